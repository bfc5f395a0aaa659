"""`download()` against real HTTP servers on 127.0.0.1: statuses, size caps, timeouts,
redirects, the SSRF guard, connection errors and per-host politeness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from imgpipe_dev.infra import free_port
from imgpipe_processor.fetch import DownloadFailed, FetchLimits, download, download_session
from imgpipe_runtime.settings import NetworkSettings
from tests.conftest import SAMPLE_IMAGES

CAT = (SAMPLE_IMAGES / "cat.jpg").read_bytes()
CAP = 64 * 1024
LIMITS = FetchLimits(max_bytes=CAP, max_redirects=3)
BIG_LIMITS = FetchLimits(max_bytes=len(CAT) * 2, max_redirects=3)


@dataclass
class LocalServer:
    """An origin on 127.0.0.1 that logs every request it receives."""

    port: int
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path


def _app(server: LocalServer) -> web.Application:
    @web.middleware
    async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        server.requests.append(request.path_qs)
        return await handler(request)

    async def cat(request: web.Request) -> web.Response:
        return web.Response(body=CAT, content_type="image/jpeg")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def sized(request: web.Request) -> web.Response:
        # A plain response: aiohttp sends Content-Length for a bytes body.
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        total = int(request.match_info["n"])
        sent = 0
        try:
            while sent < total:
                piece = min(16 * 1024, total - sent)
                await response.write(b"y" * piece)
                sent += piece
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client hung up, as it should once over the cap
        return response

    async def hang_before_headers(request: web.Request) -> web.Response:
        await server.release.wait()
        return web.Response(body=CAT)

    async def hang_mid_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(CAT)
        await response.prepare(request)
        await response.write(CAT[:1000])
        await server.release.wait()
        return response

    async def cut_off(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(CAT)
        await response.prepare(request)
        await response.write(CAT[:1000])
        assert request.transport is not None
        request.transport.close()
        return response

    async def hops(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(body=CAT, content_type="image/jpeg")
        raise web.HTTPFound(f"/hops/{n - 1}")

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["location"])

    async def polite(request: web.Request) -> web.Response:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            await asyncio.sleep(0.2)
        finally:
            server.in_flight -= 1
        return web.Response(body=b"ok")

    app = web.Application(middlewares=[access_log])
    app.router.add_get("/cat.jpg", cat)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/chunked/{n}", chunked)
    app.router.add_get("/hang-before-headers", hang_before_headers)
    app.router.add_get("/hang-mid-body", hang_mid_body)
    app.router.add_get("/cut-off", cut_off)
    app.router.add_get("/hops/{n}", hops)
    app.router.add_get("/redirect-to", redirect_to)
    app.router.add_get("/polite", polite)
    return app


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    served = LocalServer(free_port())
    runner = web.AppRunner(_app(served), shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", served.port).start()
    yield served
    served.release.set()
    await runner.cleanup()


def session(
    *,
    allow_private: bool = True,
    connect_timeout: float = 2.0,
    total_timeout: float = 5.0,
    per_host: int = 4,
) -> aiohttp.ClientSession:
    return download_session(
        NetworkSettings(imgpipe_allow_private_networks=allow_private),
        connect_timeout=connect_timeout,
        total_timeout=total_timeout,
        per_host=per_host,
    )


async def failure(url: str, limits: FetchLimits = LIMITS, **session_args: object) -> DownloadFailed:
    """The DownloadFailed that downloading `url` raises (fails the test if none is raised)."""
    async with session(**session_args) as s:  # type: ignore[arg-type]
        with pytest.raises(DownloadFailed) as caught:
            await download(s, url, limits)
    return caught.value


# 1. success


async def test_a_200_image_is_returned_byte_for_byte(server: LocalServer) -> None:
    async with session() as s:
        body = await download(s, server.url("/cat.jpg"), BIG_LIMITS)
    assert body == CAT
    assert server.requests == ["/cat.jpg"]


# 2. HTTP error statuses


@pytest.mark.parametrize("code", [400, 403, 404, 410])
async def test_a_client_error_status_is_a_permanent_failure_named_after_the_status(
    server: LocalServer, code: int
) -> None:
    failed = await failure(server.url(f"/status/{code}"))
    assert failed.reason == f"http_{code}"
    assert failed.transient is False


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503])
async def test_a_server_error_or_throttling_status_is_a_transient_failure_named_after_the_status(
    server: LocalServer, code: int
) -> None:
    failed = await failure(server.url(f"/status/{code}"))
    assert failed.reason == f"http_{code}"
    assert failed.transient is True


async def test_a_non_200_success_status_is_a_permanent_failure(server: LocalServer) -> None:
    failed = await failure(server.url("/status/204"))
    assert failed.reason == "http_204"
    assert failed.transient is False


# 3. size cap


async def test_a_body_of_exactly_the_cap_is_accepted(server: LocalServer) -> None:
    async with session() as s:
        assert await download(s, server.url(f"/sized/{CAP}"), LIMITS) == b"x" * CAP
        assert await download(s, server.url(f"/chunked/{CAP}"), LIMITS) == b"y" * CAP


async def test_a_declared_content_length_over_the_cap_is_too_large(server: LocalServer) -> None:
    failed = await failure(server.url(f"/sized/{CAP + 1}"))
    assert failed.reason == "too_large"
    assert failed.transient is False


async def test_a_chunked_body_without_content_length_that_streams_past_the_cap_is_too_large(
    server: LocalServer,
) -> None:
    failed = await failure(server.url(f"/chunked/{CAP * 8}"))
    assert failed.reason == "too_large"
    assert failed.transient is False


# 4. timeouts and broken responses


async def test_a_server_that_does_not_answer_within_the_total_timeout_is_a_transient_timeout(
    server: LocalServer,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    failed = await failure(server.url("/hang-before-headers"), total_timeout=0.5)
    elapsed = loop.time() - started
    assert failed.reason == "timeout"
    assert failed.transient is True
    assert server.requests == ["/hang-before-headers"]
    assert 0.4 < elapsed < 2.0


async def test_a_body_that_stalls_past_the_total_timeout_is_a_transient_timeout(
    server: LocalServer,
) -> None:
    failed = await failure(server.url("/hang-mid-body"), total_timeout=0.5)
    assert failed.reason == "timeout"
    assert failed.transient is True


async def test_a_body_cut_off_before_its_declared_length_is_a_transient_connection_failure(
    server: LocalServer,
) -> None:
    failed = await failure(server.url("/cut-off"), BIG_LIMITS)
    assert failed.reason == "connection"
    assert failed.transient is True


# 5. redirects


async def test_a_redirect_to_the_image_is_followed(server: LocalServer) -> None:
    async with session() as s:
        body = await download(s, server.url("/hops/1"), BIG_LIMITS)
    assert body == CAT
    assert server.requests == ["/hops/1", "/hops/0"]


async def test_a_redirect_chain_longer_than_max_redirects_is_too_many_redirects(
    server: LocalServer,
) -> None:
    failed = await failure(server.url("/hops/4"), FetchLimits(CAP, max_redirects=3))
    assert failed.reason == "too_many_redirects"
    assert failed.transient is False
    assert "/hops/0" not in server.requests


async def test_a_redirect_chain_of_exactly_max_redirects_is_followed(server: LocalServer) -> None:
    async with session() as s:
        body = await download(s, server.url("/hops/3"), FetchLimits(CAP, max_redirects=3))
    assert body == CAT


async def test_max_redirects_zero_refuses_every_redirect(server: LocalServer) -> None:
    failed = await failure(server.url("/hops/5"), FetchLimits(CAP, max_redirects=0))
    assert failed.reason == "too_many_redirects"


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/cat.jpg", "gopher://127.0.0.1:70/_x"]
)
async def test_a_redirect_to_a_non_http_scheme_is_a_permanent_invalid_url(
    server: LocalServer, location: str
) -> None:
    failed = await failure(server.url(f"/redirect-to?location={location}"))
    assert failed.reason == "invalid_url"
    assert failed.transient is False
    assert len(server.requests) == 1


async def test_a_non_http_url_is_a_permanent_invalid_url() -> None:
    failed = await failure("file:///etc/passwd")
    assert failed.reason == "invalid_url"
    assert failed.transient is False


# 6. SSRF guard

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    # Passes here because this machine's /etc/hosts maps localhost to 127.0.0.1 only; where
    # it also maps ::1, the two refusals are merged into one plain OSError (see the report).
    "localhost",
    "0x7f000001",  # hexadecimal 127.0.0.1, resolved by getaddrinfo
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "0.0.0.0",  # reaches the local host on Linux
    "[::1]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_the_guard_blocks_every_spelling_of_the_local_host_before_any_request(
    server: LocalServer, host: str
) -> None:
    failed = await failure(f"http://{host}:{server.port}/cat.jpg", allow_private=False)
    assert failed.reason == "blocked_address"
    assert failed.transient is False
    assert server.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f000001", "0.0.0.0"])
async def test_with_private_networks_allowed_the_same_spellings_reach_the_local_server(
    server: LocalServer, host: str
) -> None:
    # The control for the test above: these URLs really do lead to the local server.
    async with session(allow_private=True) as s:
        body = await download(s, f"http://{host}:{server.port}/cat.jpg", BIG_LIMITS)
    assert body == CAT
    assert server.requests == ["/cat.jpg"]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("host", ["2130706433", "127.1"])
async def test_a_legacy_numeric_ipv4_host_is_a_permanent_invalid_url_before_any_request(
    server: LocalServer, host: str, allow_private: bool
) -> None:
    # aiohttp itself refuses non-canonical IPv4 literals (decimal, short form) before the
    # socket factory runs, so the reason is invalid_url rather than blocked_address.
    failed = await failure(f"http://{host}:{server.port}/cat.jpg", allow_private=allow_private)
    assert failed.reason == "invalid_url"
    assert failed.transient is False
    assert server.requests == []


# A redirect from a public origin to a private one cannot be built from local servers alone
# (the first hop would itself be blocked), so the per-hop guard is not tested here.


# 7. connection errors


async def test_a_port_with_nothing_listening_is_a_transient_connection_failure() -> None:
    failed = await failure(f"http://127.0.0.1:{free_port()}/cat.jpg")
    assert failed.reason == "connection"
    assert failed.transient is True


async def test_an_unresolvable_host_is_a_permanent_dns_failure() -> None:
    failed = await failure("http://no-such-host.invalid/cat.jpg")
    assert failed.reason == "dns"
    assert failed.transient is False


# 8. per-host politeness


async def test_no_more_than_per_host_downloads_run_at_once_against_one_host(
    server: LocalServer,
) -> None:
    async with session(per_host=2) as s:
        bodies = await asyncio.gather(
            *(download(s, server.url(f"/polite?i={i}"), LIMITS) for i in range(6))
        )
    assert bodies == [b"ok"] * 6
    assert len(server.requests) == 6
    assert server.max_in_flight == 2
