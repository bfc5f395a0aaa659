"""Downloading source images: one aiohttp session per process, timeouts, a streaming byte cap,
and the SSRF guard on every address actually connected to (redirect hops included)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from imgpipe_processor.errors import ProcessorError
from imgpipe_runtime.http import guarded_session
from imgpipe_runtime.netguard import BlockedAddressError
from imgpipe_runtime.settings import NetworkSettings

_TRANSIENT_STATUSES = {408, 425, 429}
_CHUNK = 64 * 1024


class DownloadFailed(ProcessorError):
    """The image could not be fetched; `reason` is a short code, `transient` says retry."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    """An origin's answer: `body` on 200, None on 304 Not Modified (a conditional GET); the
    headers that say how it may be reused, names in lower case."""

    body: bytes | None
    headers: dict[str, str]

    @property
    def not_modified(self) -> bool:
        return self.body is None


# What reuse needs to know of an answer (see imgpipe_processor.caching).
CACHE_HEADERS = ("etag", "last-modified", "cache-control", "expires", "date", "age")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    max_redirects: int


def download_session(
    network: NetworkSettings, *, connect_timeout: float, total_timeout: float, per_host: int
) -> aiohttp.ClientSession:
    """The processor's one session: bodies stay compressed as sent (we cap their size)."""
    return guarded_session(
        network,
        timeout=aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=connect_timeout, sock_read=connect_timeout * 2
        ),
        user_agent="imgpipe/0.1 (+image optimiser)",
        per_host=per_host,
        auto_decompress=False,
    )


async def download(session: aiohttp.ClientSession, url: str, limits: FetchLimits) -> bytes:
    """The body of `url`, at most `limits.max_bytes`; raise DownloadFailed with a reason."""
    fetched = await fetch(session, url, limits=limits)
    assert fetched.body is not None  # an unconditional GET is never answered 304
    return fetched.body


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    conditions: dict[str, str] | None = None,
    *,
    limits: FetchLimits,
) -> Fetched:
    """`url`'s answer: its body (at most `limits.max_bytes`), or, when `conditions`
    (If-None-Match / If-Modified-Since) hold, a 304 without one; raise DownloadFailed."""
    try:
        # aiohttp gives up on the max_redirects-th redirect response and treats 0 as "no limit";
        # we mean "follow at most N redirects".
        follow = limits.max_redirects > 0
        async with session.get(
            url,
            allow_redirects=follow,
            max_redirects=limits.max_redirects + 1,
            headers=conditions or None,
        ) as response:
            headers = {
                name: value
                for name in CACHE_HEADERS
                if (value := response.headers.get(name)) is not None
            }
            if conditions and response.status == 304:
                return Fetched(None, headers)
            if not follow and 300 <= response.status < 400:
                raise _too_many_redirects(limits.max_redirects)
            if response.status >= 400:
                transient = response.status in _TRANSIENT_STATUSES or response.status >= 500
                raise DownloadFailed(
                    f"http_{response.status}",
                    f"the server answered {response.status} {response.reason or ''}".strip(),
                    transient=transient,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if response.status != 200:
                raise DownloadFailed(
                    f"http_{response.status}", f"unexpected status {response.status}"
                )
            if (response.content_length or 0) > limits.max_bytes:
                raise _too_large(limits.max_bytes)
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > limits.max_bytes:
                    raise _too_large(limits.max_bytes)
            return Fetched(bytes(body), headers)
    except DownloadFailed:
        raise
    except aiohttp.TooManyRedirects:
        raise _too_many_redirects(limits.max_redirects) from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise DownloadFailed("dns", f"the host name cannot be resolved: {exc.os_error}") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddressError):
            host = exc.host
            raise DownloadFailed("blocked_address", f"{host}: {exc.os_error}") from None
        raise DownloadFailed(
            "connection", f"cannot connect: {exc.os_error}", transient=True
        ) from None
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise DownloadFailed("invalid_url", f"not a fetchable http(s) URL: {exc}") from None
    except TimeoutError:
        raise DownloadFailed(
            "timeout", "the server did not answer in time", transient=True
        ) from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise DownloadFailed(
            "connection", f"the download broke off: {exc}", transient=True
        ) from None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _too_many_redirects(limit: int) -> DownloadFailed:
    return DownloadFailed("too_many_redirects", f"more than {limit} redirects")


def _too_large(max_bytes: int) -> DownloadFailed:
    return DownloadFailed("too_large", f"the file is larger than {max_bytes} bytes")
