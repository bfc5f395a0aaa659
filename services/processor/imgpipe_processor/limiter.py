"""Downloads per host at the limit each host's controller sets: the one seam between the
adaptive limits (hostlimit.py) and the download path, a wrapper around the fetch callable.

A download waits for a place under its host's limit (first come, first served) and, while it
waits, gives its place among the processor's images in progress back (`lend`), so that
downloads queued for one slow or silent host never hold places that other hosts' images
could use. What each download did (its latency, or a DownloadFailed's reason and Retry-After)
is fed back to its host's controller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from imgpipe_processor import metrics
from imgpipe_processor.fetch import DownloadFailed
from imgpipe_processor.hostlimit import Cut, HostController, Observation, Signal, Tuning

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Lend = Callable[[], AbstractAsyncContextManager[object]]

_REFUSED = {"http_429", "http_503", "http_504"}
_FAILED = {"timeout", "connection"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
LABEL_AFTER = 20  # downloads before a host may get a metrics label of its own
IDLE_AFTER = 600.0  # seconds after which an idle host is forgotten (limit, label)
_SWEEP_EVERY = 60.0


def host_key(url: str) -> str | None:
    """`host:port` of a URL (as the connection pool counts hosts), or None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return f"{parts.hostname}:{port}"


def signal_of(error: BaseException | None) -> tuple[Signal, str, float | None]:
    """What a download's outcome says about its host: (signal, reason, Retry-After)."""
    if error is None:
        return Signal.ANSWERED, "", None
    if isinstance(error, DownloadFailed):
        if error.reason in _REFUSED:
            return Signal.REFUSED, error.reason, error.retry_after
        if error.reason in _FAILED:
            return Signal.FAILED, error.reason, None
    return Signal.OTHER, "", None


@dataclass(eq=False)
class _Host:
    key: str
    controller: HostController
    label: str = metrics.OTHER_HOSTS
    in_flight: int = 0
    waiting: int = 0
    downloads: int = 0
    last_used: float = 0.0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    wake_up: asyncio.TimerHandle | None = None


class HostLimiter:
    """Per-host adaptive download limits for one process (see hostlimit.py)."""

    def __init__(
        self,
        tuning: Tuning,
        *,
        lend: Lend = nullcontext,
        labels: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tuning = tuning
        self._lend = lend
        self._labels_free = labels
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._swept = clock()

    def wrap(
        self, fetch: Callable[Concatenate[str, P], Awaitable[T]]
    ) -> Callable[Concatenate[str, P], Awaitable[T]]:
        """`fetch` (whose first argument is the URL) under its host's limit."""

        async def limited(url: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
            async with self.slot(url):
                return await fetch(url, *args, **kwargs)

        return limited

    def limit(self, url: str) -> int | None:
        """The current limit of `url`'s host, if it has one yet."""
        host = self._hosts.get(host_key(url) or "")
        return None if host is None else host.controller.limit

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """A place under the limit of `url`'s host, for one download inside the block."""
        key = host_key(url)
        if key is None:  # not fetchable anyway: the download names the error
            yield
            return
        host = self._host(key)
        await self._acquire(host)
        sent_at = self._clock()
        level = host.in_flight
        label = host.label
        metrics.HOST_IN_FLIGHT.labels(label).inc()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            metrics.HOST_IN_FLIGHT.labels(label).dec()
            signal, reason, retry_after = signal_of(error)
            self._release(host, label, Observation(signal, sent_at, level, reason, retry_after))

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(key, HostController(self._tuning))
        host.downloads += 1
        host.last_used = self._clock()
        busy = host.downloads >= LABEL_AFTER
        if host.label == metrics.OTHER_HOSTS and busy and self._labels_free > 0:
            self._labels_free -= 1
            host.label = key
        return host

    async def _acquire(self, host: _Host) -> None:
        if not host.waiters and host.controller.room(host.in_flight, self._clock()):
            host.in_flight += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        host.waiters.append(turn)
        host.waiting += 1
        label = host.label
        metrics.HOST_WAITING.labels(label).inc()
        self._wake(host)  # a pause may need its wake-up
        try:
            async with self._lend():
                await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._give_back(host)  # our turn came as we were cancelled: pass it on
            turn.cancel()
            raise
        finally:
            host.waiting -= 1
            metrics.HOST_WAITING.labels(label).dec()

    def _give_back(self, host: _Host) -> None:
        host.in_flight -= 1
        self._wake(host)

    def _wake(self, host: _Host) -> None:
        """Start as many waiting downloads as the host's limit allows now; if it is paused,
        come back when the pause ends."""
        now = self._clock()
        while host.waiters and host.controller.room(host.in_flight, now):
            turn = host.waiters.popleft()
            if turn.done():
                continue
            host.in_flight += 1
            turn.set_result(None)
        paused_for = host.controller.paused_until - now
        if host.waiters and paused_for > 0 and host.wake_up is None:
            host.wake_up = asyncio.get_running_loop().call_later(paused_for, self._pause_over, host)

    def _pause_over(self, host: _Host) -> None:
        host.wake_up = None
        self._wake(host)

    def _release(self, host: _Host, label: str, seen: Observation) -> None:
        host.in_flight -= 1
        now = self._clock()
        host.last_used = now
        cut = host.controller.observe(seen, now)
        if seen.signal is Signal.ANSWERED:
            metrics.HOST_DOWNLOAD_SECONDS.labels(label).observe(now - seen.sent_at)
        elif seen.signal is not Signal.OTHER:
            metrics.HOST_REFUSALS.labels(label, seen.reason).inc()
        if cut is not None:
            metrics.HOST_LIMIT_CUTS.labels(label).inc()
            _log_cut(host.key, cut)
        if host.label != metrics.OTHER_HOSTS:
            metrics.HOST_LIMIT.labels(host.label).set(host.controller.limit)
        self._wake(host)
        if now - self._swept > _SWEEP_EVERY:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        """Drop hosts idle for IDLE_AFTER: their state (a returning host starts afresh) and
        their metrics label (free for another host)."""
        self._swept = now
        for key, host in list(self._hosts.items()):
            if host.in_flight or host.waiting or now - host.last_used < IDLE_AFTER:
                continue
            del self._hosts[key]
            if host.wake_up is not None:
                host.wake_up.cancel()
            if host.label != metrics.OTHER_HOSTS:
                self._labels_free += 1
                for family in (
                    metrics.HOST_LIMIT,
                    metrics.HOST_IN_FLIGHT,
                    metrics.HOST_WAITING,
                    metrics.HOST_REFUSALS,
                    metrics.HOST_LIMIT_CUTS,
                    metrics.HOST_DOWNLOAD_SECONDS,
                ):
                    family.remove_by_labels({"host": host.label})


def _log_cut(key: str, cut: Cut) -> None:
    paused = f", paused {cut.pause:g} s (Retry-After)" if cut.pause else ""
    if cut.after < cut.before:
        change = f"limit cut from {cut.before} to {cut.after}"
    else:
        change = f"limit stays {cut.after}"
    log.info("downloads from %s: %s (%s)%s", key, change, cut.cause, paused)
