"""The limiter around the processor's fetch: downloads wait for their host's limit (and its
pause), give their place among the images in progress back while they wait, and report what
happened to their host's controller. Fake fetches; no network."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from imgpipe_processor.fetch import DownloadFailed
from imgpipe_processor.hostlimit import Signal, Tuning
from imgpipe_processor.limiter import LABEL_AFTER, HostLimiter, host_key, signal_of
from imgpipe_processor.outcomes import Slots

TUNING = Tuning(floor=2, ceiling=8)


class Origin:
    """Fake downloads that stay open until released, counting what runs at once per host."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, Exception] = {}

    def gate(self, host: str) -> asyncio.Event:
        return self.gates.setdefault(host, asyncio.Event())

    async def fetch(self, url: str) -> bytes:
        host = host_key(url) or ""
        self.started.append(url)
        self.running[host] += 1
        self.peak[host] = max(self.peak[host], self.running[host])
        try:
            await asyncio.sleep(0)  # the others start meanwhile, as over a network
            await self.gate(host).wait()
            if url in self.failures:
                raise self.failures[url]
            return b"image"
        finally:
            self.running[host] -= 1


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    """Let the loop run until `check()` holds (or fail after `within` seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def spawn(work: list[Awaitable[bytes]]) -> list[asyncio.Task[bytes]]:
    async def run(one: Awaitable[bytes]) -> bytes:
        return await one

    return [asyncio.create_task(run(w)) for w in work]


def unique_host() -> str:
    return f"{uuid.uuid4().hex[:12]}.shop.test"


async def test_no_more_downloads_than_the_limit_run_at_once_against_one_host() -> None:
    origin = Origin()
    fetch = HostLimiter(TUNING).wrap(origin.fetch)
    host = unique_host()
    tasks = spawn([fetch(f"https://{host}/{n}.jpg") for n in range(10)])
    await until(lambda: len(origin.started) == 2)
    await asyncio.sleep(0.01)

    assert origin.peak[f"{host}:443"] == 2  # a new host starts at the floor
    origin.gate(f"{host}:443").set()
    assert await asyncio.gather(*tasks) == [b"image"] * 10
    assert origin.peak[f"{host}:443"] <= TUNING.ceiling


async def test_a_busy_host_does_not_hold_back_another_host() -> None:
    origin = Origin()
    fetch = HostLimiter(TUNING).wrap(origin.fetch)
    slow, fast = unique_host(), unique_host()
    waiting = spawn([fetch(f"http://{slow}/{n}.jpg") for n in range(20)])
    await until(lambda: origin.running[f"{slow}:80"] == 2)
    origin.gate(f"{fast}:80").set()

    done = await asyncio.gather(*spawn([fetch(f"http://{fast}/{n}.jpg") for n in range(20)]))

    assert done == [b"image"] * 20
    assert origin.running[f"{slow}:80"] == 2
    origin.gate(f"{slow}:80").set()
    await asyncio.gather(*waiting)


async def test_a_waiting_download_gives_its_place_among_the_images_in_progress_back() -> None:
    origin = Origin()
    slots = Slots(3)
    fetch = HostLimiter(TUNING, lend=slots.lent).wrap(origin.fetch)
    busy, other = unique_host(), unique_host()

    async def job(url: str) -> bytes:
        async with slots:
            return await fetch(url)

    first = spawn([job(f"http://{busy}/{n}.jpg") for n in range(3)])
    await until(lambda: origin.running[f"{busy}:80"] == 2 and slots.busy == 2)
    origin.gate(f"{other}:80").set()

    # Three slots: two downloading from `busy`, its third job waits without a slot.
    assert await asyncio.wait_for(job(f"http://{other}/x.jpg"), 5) == b"image"
    origin.gate(f"{busy}:80").set()
    assert await asyncio.gather(*first) == [b"image"] * 3
    assert slots.busy == 0


async def test_a_retry_after_pauses_new_downloads_from_that_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    origin = Origin()
    loop = asyncio.get_running_loop()
    limiter = HostLimiter(TUNING, clock=loop.time)
    fetch = limiter.wrap(origin.fetch)
    paused, other = unique_host(), unique_host()
    origin.failures[f"http://{paused}/refused.jpg"] = DownloadFailed(
        "http_429", "the server answered 429", transient=True, retry_after=0.3
    )
    origin.gate(f"{paused}:80").set()
    origin.gate(f"{other}:80").set()

    with caplog.at_level(logging.INFO, "imgpipe_processor.limiter"), pytest.raises(DownloadFailed):
        await fetch(f"http://{paused}/refused.jpg")
    refused_at = loop.time()
    assert f"{paused}:80: limit stays 2 (http_429), paused 0.3 s (Retry-After)" in caplog.text
    later = asyncio.create_task(fetch(f"http://{paused}/later.jpg"))
    assert await fetch(f"http://{other}/meanwhile.jpg") == b"image"
    assert not later.done()

    assert await later == b"image"
    assert loop.time() - refused_at >= 0.3
    assert origin.started[-1] == f"http://{paused}/later.jpg"


async def test_a_cancelled_waiting_download_leaves_the_counts_as_they_were() -> None:
    origin = Origin()
    slots = Slots(4)
    limiter = HostLimiter(TUNING, lend=slots.lent)
    fetch = limiter.wrap(origin.fetch)
    host = unique_host()

    async def job(url: str) -> bytes:
        async with slots:
            return await fetch(url)

    tasks = spawn([job(f"http://{host}/{n}.jpg") for n in range(4)])
    await until(lambda: origin.running[f"{host}:80"] == 2)
    tasks[3].cancel()
    await asyncio.gather(tasks[3], return_exceptions=True)
    origin.gate(f"{host}:80").set()

    assert await asyncio.gather(*tasks[:3]) == [b"image"] * 3
    assert slots.busy == 0
    assert len(origin.started) == 3


async def test_a_cut_is_logged_with_its_host_and_cause(caplog: pytest.LogCaptureFixture) -> None:
    origin = Origin()
    limiter = HostLimiter(TUNING)
    fetch = limiter.wrap(origin.fetch)
    host = unique_host()
    origin.gate(f"{host}:80").set()
    for n in range(20):
        await asyncio.gather(*(fetch(f"http://{host}/{n}-{k}.jpg") for k in range(8)))
    assert limiter.limit(f"http://{host}/") == 8
    origin.failures[f"http://{host}/down.jpg"] = DownloadFailed("timeout", "no answer")

    with caplog.at_level(logging.INFO, "imgpipe_processor.limiter"), pytest.raises(DownloadFailed):
        await fetch(f"http://{host}/down.jpg")

    assert limiter.limit(f"http://{host}/") == 2
    assert f"downloads from {host}:80: limit cut from 8 to 2 (timeout)" in caplog.text


def sample(name: str, host: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"host": host, **labels}) or 0.0


async def test_busy_hosts_get_metrics_labels_of_their_own_and_the_rest_count_as_other() -> None:
    origin = Origin()
    fetch = HostLimiter(TUNING, labels=1).wrap(origin.fetch)
    busy, rare = unique_host(), unique_host()
    for host in (busy, rare):
        origin.gate(f"{host}:80").set()
        origin.failures[f"http://{host}/refused.jpg"] = DownloadFailed("http_503", "busy")
    others_before = sample("imgpipe_processor_host_refusals_total", "other", reason="http_503")

    for n in range(LABEL_AFTER):
        await fetch(f"http://{busy}/{n}.jpg")
    with pytest.raises(DownloadFailed):
        await fetch(f"http://{busy}/refused.jpg")
    for n in range(LABEL_AFTER + 5):
        await fetch(f"http://{rare}/{n}.jpg")
    with pytest.raises(DownloadFailed):
        await fetch(f"http://{rare}/refused.jpg")

    label = f"{busy}:80"
    assert sample("imgpipe_processor_host_refusals_total", label, reason="http_503") == 1
    assert sample("imgpipe_processor_host_download_limit", label) >= 2
    assert sample("imgpipe_processor_host_download_seconds_count", label) == 1
    assert sample("imgpipe_processor_host_refusals_total", f"{rare}:80", reason="http_503") == 0
    others = sample("imgpipe_processor_host_refusals_total", "other", reason="http_503")
    assert others == others_before + 1


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://Shop.Test/a.jpg", "shop.test:443"),
        ("http://shop.test/a.jpg", "shop.test:80"),
        ("http://127.0.0.1:8001/a.jpg?x=1", "127.0.0.1:8001"),
        ("http://[::1]:8001/a.jpg", "::1:8001"),
        ("ftp://shop.test/a.jpg", None),
        ("http://shop.test:99999/a.jpg", None),
        ("not a url", None),
    ],
)
def test_hosts_are_counted_by_name_and_port(url: str, key: str | None) -> None:
    assert host_key(url) == key


@pytest.mark.parametrize(
    ("error", "signal"),
    [
        (None, Signal.ANSWERED),
        (DownloadFailed("http_429", "", retry_after=2), Signal.REFUSED),
        (DownloadFailed("http_503", ""), Signal.REFUSED),
        (DownloadFailed("http_504", ""), Signal.REFUSED),
        (DownloadFailed("timeout", ""), Signal.FAILED),
        (DownloadFailed("connection", ""), Signal.FAILED),
        (DownloadFailed("http_404", ""), Signal.OTHER),
        (DownloadFailed("http_500", ""), Signal.OTHER),
        (DownloadFailed("dns", ""), Signal.OTHER),
        (asyncio.CancelledError(), Signal.OTHER),
    ],
)
def test_what_each_outcome_says_about_the_host(error: BaseException | None, signal: Signal) -> None:
    assert signal_of(error)[0] is signal
