"""Per-host download limits against the whole system: origins that behave like real hosts
(a small shop's server that serves 8 requests at once and answers 429 beyond; a host that
stops answering for a while), and what the processor does with them, seen from the origins'
own counts and from the processor's metrics. No timing is asserted: throughput is measured
by `make bench`."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from imgpipe_dev.infra import free_port
from imgpipe_dev.origin import HostBehaviour
from tests.conftest import SAMPLE_IMAGES, Namespace, new_namespace, serving
from tests.e2e.conftest import RunningStack, eventually, stack_running

FLOOR = 2  # DOWNLOADS_PER_HOST_MIN's default
# How far past the cap a host may see us at the start, before its first refusal comes back:
# the limit grows by one per answer then, and answers that arrive together raise it together.
OVERSHOOT = 3


@pytest.fixture(scope="module")
async def hosts_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    # Enough attempts that refusals and a short outage never fail an image.
    async with new_namespace(rabbitmq_url, mongodb_url, retry_delays="0.5,1,2,4,8") as ns:
        yield ns


@pytest.fixture(scope="module")
def hosts_stack(
    hosts_namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    root: Path = tmp_path_factory.mktemp("hosts")
    settings = {
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        "CONNECT_TIMEOUT": "1",
        "DOWNLOAD_TIMEOUT": "2",
    }
    with stack_running(hosts_namespace, root, settings) as running:
        yield running


@pytest.fixture(scope="module")
def small_photo() -> bytes:
    """A product thumbnail: a real photo, quick to recompress (the tests are about downloads)."""
    with Image.open(SAMPLE_IMAGES / "cat.jpg") as image:
        image.thumbnail((200, 200))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@contextlib.asynccontextmanager
async def origin_host(behaviour: HostBehaviour, photo: bytes) -> AsyncIterator[str]:
    """An origin on a port of its own (so a host of its own) that behaves as told."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=photo, content_type="image/jpeg")

    port = free_port()
    app = web.Application(middlewares=[behaviour.middleware])
    app.router.add_get("/p/{name}", image)
    try:
        async with serving(app, port, handler_cancellation=True):
            yield f"http://127.0.0.1:{port}"
    finally:
        behaviour.answer_again()


def products(base: str, count: int, tag: str) -> str:
    rows = [f"{n},SKU-{tag}-{n},{base}/p/{tag}-{n}.jpg" for n in range(1, count + 1)]
    return "S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n"


async def upload(http: aiohttp.ClientSession, stack: RunningStack, text: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
    async with http.post(f"{stack.ingest_url}/upload/", data=form) as response:
        assert response.status == 202, await response.text()
        body: dict[str, Any] = await response.json()
    return str(body["status_url"])


async def final_status(
    http: aiohttp.ClientSession, status_url: str, within: float = 120
) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        async with http.get(status_url) as response:
            body: dict[str, Any] = await response.json()
        return body if body["status"] in ("Completed", "Failed") else None

    result: dict[str, Any] = await eventually(final, within=within)  # type: ignore[assignment]
    return result


async def host_limit(http: aiohttp.ClientSession, stack: RunningStack, base: str) -> float | None:
    """The processor's current download limit for the host of `base` (its metrics)."""
    url = f"http://127.0.0.1:{stack.stack.env['METRICS_PORT']}/metrics"
    async with http.get(url) as response:
        text = await response.text()
    host = base.removeprefix("http://")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "imgpipe_processor_host_download_limit"
                and sample.labels.get("host") == host
            ):
                return sample.value
    return None


async def test_a_host_that_serves_8_at_once_gets_every_image_and_few_refusals(
    hosts_stack: RunningStack, http: aiohttp.ClientSession, small_photo: bytes
) -> None:
    shop = HostBehaviour(latency=0.05, cap=8, retry_after=1)
    async with origin_host(shop, small_photo) as base:
        final = await final_status(http, await upload(http, hosts_stack, products(base, 400, "c")))

    assert final["progress"] == {"total": 400, "processed": 400, "failed": 0}
    assert shop.refused < 0.15 * shop.requests, shop.counts()
    assert shop.peak <= 8 + OVERSHOOT, shop.counts()


async def test_a_host_that_stops_answering_drops_to_the_floor_and_another_host_goes_on(
    hosts_stack: RunningStack, http: aiohttp.ClientSession, small_photo: bytes
) -> None:
    silent, other = HostBehaviour(latency=0.1), HostBehaviour(latency=0.02)
    async with origin_host(silent, small_photo) as a, origin_host(other, small_photo) as b:
        # Given a host 100 ms away that answered well, so that its limit grew above the floor,
        warm = await final_status(http, await upload(http, hosts_stack, products(a, 150, "w")))
        assert warm["progress"]["processed"] == 150
        assert (await host_limit(http, hosts_stack, a) or 0) > FLOOR
        assert silent.peak > FLOOR

        # when it stops answering while 500 more of its images are queued,
        silent.stop_answering()
        waiting = await upload(http, hosts_stack, products(a, 500, "s"))

        async def at_the_floor() -> bool:
            return await host_limit(http, hosts_stack, a) == FLOOR and silent.open <= FLOOR

        await eventually(at_the_floor, within=30)
        silent.reset()

        # then another host's images are all processed while it stays silent,
        done = await final_status(http, await upload(http, hosts_stack, products(b, 200, "o")))
        assert done["progress"] == {"total": 200, "processed": 200, "failed": 0}
        assert other.peak > FLOOR
        assert silent.peak <= FLOOR, silent.counts()
        assert await host_limit(http, hosts_stack, a) == FLOOR

        # and once it answers again, its own images are all processed too.
        silent.answer_again()
        final = await final_status(http, waiting)
    assert final["progress"] == {"total": 500, "processed": 500, "failed": 0}
