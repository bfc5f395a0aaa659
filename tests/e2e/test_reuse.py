"""Each source fetched and encoded once, end to end: a stack of its own (so nothing another
test did is reused here), a catalog origin that counts what it is asked, and the processor's
own metrics for the encodes.

Requests run one after the other; each test uses its own photo numbers, so that what one
test stored does not count in another's figures.
"""

from __future__ import annotations

import csv
import io
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from imgpipe_dev.infra import free_port
from tests.catalog import Catalog
from tests.conftest import Namespace, new_namespace, serving
from tests.e2e.conftest import RunningStack, eventually, stack_running
from tests.e2e.test_pipeline import upload, wait_for_final_status

ROWS_PER_SOURCE = 10


@pytest.fixture(scope="module")
async def catalog() -> AsyncIterator[Catalog]:
    served = Catalog()
    port = free_port()
    served.base_url = f"http://127.0.0.1:{port}"
    async with serving(served.app(), port):
        yield served


@pytest.fixture(scope="module")
async def reuse_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="module")
def reuse_stack(
    reuse_namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    root = tmp_path_factory.mktemp("reuse-stack")
    env = {"IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true", "REUSE_LEASE": "5"}
    with stack_running(reuse_namespace, root, env) as running:
        yield running


def catalog_csv(urls: list[str]) -> str:
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [f"{n},SKU-{n:05d},{url}" for n, url in enumerate(urls, 1)]
    return "\r\n".join(lines) + "\r\n"


async def processor_counters(
    session: aiohttp.ClientSession, stack: RunningStack
) -> dict[str, float]:
    """The processor's counters (it may be starting: they are waited for)."""
    url = f"http://127.0.0.1:{stack.stack.env['METRICS_PORT']}/metrics"

    async def scraped() -> str | None:
        try:
            async with session.get(url) as response:
                return await response.text() if response.status == 200 else None
        except aiohttp.ClientConnectionError:
            return None

    text: str = await eventually(scraped)  # type: ignore[assignment]
    return {
        sample.name + "".join(f"/{v}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("imgpipe_processor_") and sample.name.endswith("_total")
    }


async def run(
    session: aiohttp.ClientSession, stack: RunningStack, catalog: Catalog, urls: list[str]
) -> tuple[dict[str, Any], list[list[str]], dict[str, float]]:
    """Upload `urls` (one per row), wait for the end; the final status, the output CSV's
    rows and what the processor's counters moved by."""
    before = await processor_counters(session, stack)
    catalog.reset_counts()
    accepted = await upload(session, stack, catalog_csv(urls), "http://127.0.0.1:9/unused")
    status = await wait_for_final_status(session, accepted["status_url"])
    assert status["status"] == "Completed", status
    async with session.get(status["output_csv_url"]) as response:
        rows = list(csv.reader(io.StringIO(await response.text())))[1:]
    after = await processor_counters(session, stack)
    moved = {name: after[name] - before.get(name, 0.0) for name in after}
    return status, rows, moved


def encodes(moved: dict[str, float]) -> int:
    return int(moved.get("imgpipe_processor_encodes_total", 0))


async def assert_outputs_match_sources(
    session: aiohttp.ClientSession, catalog: Catalog, urls: list[str], rows: list[list[str]]
) -> None:
    """Every row has one output, in input order, and each output is its source as it is now
    (the same photo's JPEG at quality 50: same size, near the same pixels)."""
    assert [r[2] for r in rows] == urls
    made: dict[str, bytes] = {}
    for url, row in zip(urls, rows, strict=True):
        output = row[3]
        assert output, row
        if output not in made:
            async with session.get(output) as response:
                assert response.status == 200, output
                made[output] = await response.read()
        n = int(url.rsplit("/", 1)[1].removesuffix(".jpg"))
        with (
            Image.open(io.BytesIO(made[output])) as produced,
            Image.open(io.BytesIO(catalog.current(n))) as source,
        ):
            assert produced.format == "JPEG" and produced.size == source.size
            assert mean_difference(produced, source) < 12, url


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    pa, pb = a.convert("RGB").tobytes(), b.convert("RGB").tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / len(pa)


async def test_identical_urls_in_one_request_are_downloaded_and_encoded_once(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    sources = [catalog.url("etag", n) for n in range(1000, 1200)]
    urls = [sources[i % len(sources)] for i in range(len(sources) * ROWS_PER_SOURCE)]
    async with aiohttp.ClientSession() as session:
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert status["progress"] == {"total": 2000, "processed": 2000, "failed": 0}
        assert catalog.totals() == (200, 0, 0)
        assert max(catalog.full.values()) == 1
        assert encodes(moved) == 200
        assert status["reused"] == {"not_modified": 0, "same_bytes": 0, "fresh": 1800}
        await assert_outputs_match_sources(session, catalog, urls, rows)
        # Every row of one source links to the same stored output.
        by_source: dict[str, set[str]] = {}
        for url, row in zip(urls, rows, strict=True):
            by_source.setdefault(url, set()).add(row[3])
        assert all(len(outputs) == 1 for outputs in by_source.values())


async def test_a_repeated_request_downloads_no_body_and_encodes_nothing(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("etag", n) for n in range(2000, 2200)]
    async with aiohttp.ClientSession() as session:
        first, first_rows, _ = await run(session, reuse_stack, catalog, urls)
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert catalog.totals() == (0, 200, 200)
        assert encodes(moved) == 0
        assert status["reused"] == {"not_modified": 200, "same_bytes": 0, "fresh": 0}
        assert status["bytes_not_downloaded"] == first["bytes_in"] == status["bytes_in"]
        assert [r[3] for r in rows] == [r[3] for r in first_rows]
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_changed_sources_are_encoded_again_and_the_rest_reused(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("etag", n) for n in range(3000, 3200)]
    changed = range(3000, 3200, 10)
    async with aiohttp.ClientSession() as session:
        _, first_rows, _ = await run(session, reuse_stack, catalog, urls)
        for n in changed:
            catalog.change(n)
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert encodes(moved) == len(changed)
        assert catalog.totals() == (len(changed), 200, 200 - len(changed))
        assert status["reused"]["not_modified"] == 200 - len(changed)
        assert sum(a != b for a, b in zip(first_rows, rows, strict=True)) == len(changed)
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_sources_without_validators_are_downloaded_every_time_but_not_encoded_again(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("none", n) for n in range(4000, 4100)]
    async with aiohttp.ClientSession() as session:
        await run(session, reuse_stack, catalog, urls)
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert catalog.totals() == (100, 0, 0)
        assert encodes(moved) == 0
        assert status["reused"] == {"not_modified": 0, "same_bytes": 100, "fresh": 0}
        assert status["bytes_not_downloaded"] == 0
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_within_max_age_a_source_is_reused_without_asking_the_origin(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("maxage", n) for n in range(5000, 5050)]
    async with aiohttp.ClientSession() as session:
        await run(session, reuse_stack, catalog, urls)
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert catalog.totals() == (0, 0, 0)
        assert encodes(moved) == 0
        assert status["reused"] == {"not_modified": 0, "same_bytes": 0, "fresh": 50}
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_no_store_answers_are_never_reused(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("nostore", n) for n in range(6000, 6020)]
    async with aiohttp.ClientSession() as session:
        await run(session, reuse_stack, catalog, urls)
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert catalog.totals() == (20, 0, 0)
        assert encodes(moved) == 20
        assert status["reused"] == {"not_modified": 0, "same_bytes": 0, "fresh": 0}
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_an_output_removed_from_the_store_is_made_again_not_linked_broken(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("etag", n) for n in range(7000, 7010)]
    async with aiohttp.ClientSession() as session:
        _, first_rows, _ = await run(session, reuse_stack, catalog, urls)
        lost = first_rows[3][3].split("/files/", 1)[1]
        (reuse_stack.data_dir / lost).unlink()
        status, rows, moved = await run(session, reuse_stack, catalog, urls)
        assert encodes(moved) == 1
        assert status["reused"]["not_modified"] == 9
        await assert_outputs_match_sources(session, catalog, urls, rows)


async def test_a_new_jpeg_quality_reuses_nothing_made_with_the_old_one(
    reuse_stack: RunningStack, catalog: Catalog
) -> None:
    urls = [catalog.url("etag", n) for n in range(8000, 8040)]
    async with aiohttp.ClientSession() as session:
        _, first_rows, _ = await run(session, reuse_stack, catalog, urls)
        restart_processor(reuse_stack, {"JPEG_QUALITY": "60"})
        try:
            status, rows, moved = await run(session, reuse_stack, catalog, urls)
        finally:
            restart_processor(reuse_stack, {})
        assert encodes(moved) == 40
        assert status["reused"] == {"not_modified": 0, "same_bytes": 0, "fresh": 0}
        assert not {r[3] for r in rows} & {r[3] for r in first_rows}
        for row in rows[:3]:
            async with session.get(row[3]) as response:
                data = await response.read()
            with Image.open(io.BytesIO(data)) as produced:
                assert quality_of(produced) == 60


def restart_processor(stack: RunningStack, env: dict[str, str]) -> None:
    stack.stack.kill("processor", signal.SIGTERM)
    stack.stack.start_one("processor", env=env)
    stack.stack.wait_healthy()


def quality_of(image: Image.Image) -> int:
    """The libjpeg quality whose luminance table the image carries."""
    reference = Image.new("RGB", (8, 8))
    for quality in range(1, 96):
        buffer = io.BytesIO()
        reference.save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as probe:
            if probe.quantization[0] == image.quantization[0]:  # type: ignore[attr-defined]
                return quality
    raise AssertionError("not a libjpeg quality table")
