"""Reuse against the real database, a real origin and a real file store: what two processors
do when they meet the same new source, a lease left by a processor that died, and an output
the collector is removing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageRequested
from imgpipe_dev.infra import free_port
from imgpipe_processor.caching import SHARED_SCOPE, output_fingerprint, source_id
from imgpipe_processor.fetch import FetchLimits, fetch
from imgpipe_processor.reuse import Maker, Reuser
from imgpipe_processor.sources import OutputBeingRemoved, SourceStore
from imgpipe_processor.transform import Recompressed, recompress
from imgpipe_runtime.files import LocalFileStore
from imgpipe_runtime.mongo import ensure_indexes
from tests.catalog import Catalog
from tests.conftest import Namespace, serving

LIMITS = FetchLimits(max_bytes=10_000_000, max_redirects=0)


@pytest.fixture
async def catalog() -> AsyncIterator[Catalog]:
    served = Catalog()
    port = free_port()
    served.base_url = f"http://127.0.0.1:{port}"
    async with serving(served.app(), port):
        yield served


@pytest.fixture
async def store(
    ns: Namespace, mongo: AsyncMongoClient[dict[str, object]]
) -> AsyncIterator[SourceStore]:
    db = mongo[ns.database]
    await ensure_indexes(db)  # type: ignore[arg-type]
    yield SourceStore(db)  # type: ignore[arg-type]


class CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, data: bytes) -> Recompressed:
        self.calls += 1
        await asyncio.sleep(0.2)  # long enough for a second processor to meet the source
        return recompress(data, 50_000_000, 50)


def processor(
    store: SourceStore,
    files: LocalFileStore,
    session: aiohttp.ClientSession,
    encoder: CountingEncoder,
) -> Reuser:
    return Reuser(
        store,
        files,
        partial(fetch, session, limits=LIMITS),
        Maker(encoder, files),
        fingerprint=output_fingerprint(50),
        reuse_scope="tenant",
        lease_seconds=2,
        poll_seconds=0.05,
    )


def job(url: str, request_id: str | None = None) -> ImageRequested:
    return ImageRequested(
        request_id=request_id or uuid.uuid4().hex,
        row_index=0,
        position=0,
        serial_number=1,
        product_name="SKU1",
        url=url,
    )


async def test_two_processors_meeting_a_new_source_fetch_and_encode_it_once(
    store: SourceStore, catalog: Catalog, tmp_path: Path
) -> None:
    files = LocalFileStore(tmp_path, "http://files.test")
    encoder = CountingEncoder()
    url = catalog.url("etag", 1)
    async with aiohttp.ClientSession() as session:
        first, second = (
            processor(store, files, session, encoder),
            processor(store, files, session, encoder),
        )
        made = await asyncio.gather(
            first.image_for(job(url), "images/x/a.jpg"),
            second.image_for(job(url), "images/x/b.jpg"),
        )
    assert catalog.totals()[0] == 1
    assert encoder.calls == 1
    assert made[0].key == made[1].key
    assert sorted(str(m.reused) for m in made) == ["None", "not_modified"]
    assert await files.exists(made[0].key)


async def test_a_lease_left_by_a_processor_that_died_is_taken_over_when_it_ends(
    store: SourceStore, catalog: Catalog, tmp_path: Path
) -> None:
    files = LocalFileStore(tmp_path, "http://files.test")
    encoder = CountingEncoder()
    url = catalog.url("etag", 2)
    now = datetime.now(UTC)
    dead = await store.take_lease(source_id(SHARED_SCOPE, url), now, now + timedelta(seconds=1))
    assert dead is not None
    async with aiohttp.ClientSession() as session:
        made = await processor(store, files, session, encoder).image_for(job(url), "images/x/a.jpg")
    assert (catalog.totals()[0], encoder.calls, made.reused) == (1, 1, None)
    assert datetime.now(UTC) >= now + timedelta(seconds=1)


async def test_an_output_being_removed_is_not_reused_nor_recorded_over(
    store: SourceStore, ns: Namespace, mongo: AsyncMongoClient[dict[str, object]]
) -> None:
    outputs = mongo[ns.database][documents.OUTPUTS]
    await outputs.insert_one({"_id": "o1", "state": "deleting"})
    now = datetime.now(UTC)
    assert await store.use_output("o1", "r1") is None
    with pytest.raises(OutputBeingRemoved):
        await store.add_output("o1", {"key": "images/shared/o1.jpg"}, "r1", now)
    assert (await outputs.find_one({"_id": "o1"}))["state"] == "deleting"  # type: ignore[index]


async def test_using_an_output_records_which_request_refers_to_it(
    store: SourceStore, ns: Namespace, mongo: AsyncMongoClient[dict[str, object]]
) -> None:
    pages = mongo[ns.database][documents.OUTPUT_REFS]
    now = datetime.now(UTC)
    await store.add_output("o2", {"key": "images/shared/o2.jpg"}, "r1", now)
    for _ in range(2):
        assert await store.use_output("o2", "r2") is not None
    assert await store.use_output("o3", "r2", look_first=True) is None
    found = {
        (output, page["request_id"]) async for page in pages.find() for output in page["outputs"]
    }
    assert sorted(found) == [("o2", "r1"), ("o2", "r2")]


async def test_the_references_made_together_share_one_page_per_request(
    store: SourceStore, ns: Namespace, mongo: AsyncMongoClient[dict[str, object]]
) -> None:
    pages = mongo[ns.database][documents.OUTPUT_REFS]
    now = datetime.now(UTC)
    made = [
        store.add_output(f"p{n}", {"key": f"images/shared/p{n}.jpg"}, f"r{n % 2}", now)
        for n in range(10)
    ]
    await asyncio.gather(*made, store.use_output("p0", "r0"))
    found = sorted([(page["request_id"], sorted(page["outputs"])) async for page in pages.find()])
    assert found == [("r0", ["p0", "p2", "p4", "p6", "p8"]), ("r1", ["p1", "p3", "p5", "p7", "p9"])]
