"""Deleting a request (what DELETE /requests/{id} does) on the real database, with each file
store: its records, its own files and its references go; what another request shares stays;
an interrupted deletion is hidden at once and finished by whoever meets it next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from imgpipe_contracts import documents
from imgpipe_dev.infra import free_port
from imgpipe_dev.s3local import LocalS3, s3_env
from imgpipe_runtime.files import StoreUnavailable, open_file_store
from imgpipe_runtime.settings import StorageSettings
from imgpipe_status.collector import STALLED_DELETION, delete_request
from tests.integration.retention_world import World, credentials, store, world
from tests.integration.test_status_aggregation import accepted_request
from tests.s3 import FaultyS3, keys_in, new_bucket

__all__ = ["credentials", "store", "world"]


async def delete(world: World, request_id: str, owner: str | None = None) -> Any:
    started, _ = await delete_request(
        request_id,
        owner,
        retention=world.retention,
        files=world.files,
        progress_cache=world.cache,
    )
    return started


async def records_of(world: World, request_id: str) -> dict[str, int]:
    by_request = {"request_id": request_id}
    return {
        "requests": await world.count(documents.REQUESTS, {"_id": request_id}),
        "products": await world.count(documents.PRODUCTS, by_request),
        "row_batches": await world.count(documents.ROW_BATCHES, by_request),
        "images": await world.count(documents.IMAGES, by_request),
        "refs": await world.count(documents.OUTPUT_REFS, by_request),
    }


NOTHING = {"requests": 0, "products": 0, "row_batches": 0, "images": 0, "refs": 0}


async def test_deleting_a_request_removes_its_records_files_and_references_not_what_is_shared(
    world: World,
) -> None:
    a = await world.finished(["cat", "fox", "own-a"])
    b = await world.finished(["cat"])
    # Rows left behind by a crash between completion and their removal go too.
    await world.db[documents.ROW_BATCHES].insert_one(
        documents.row_batch_document(a, [{"row_index": 0, "urls": []}])
    )
    cat, fox = world.output("cat"), world.output("fox")
    own_a = f"images/{a}/000001-03-own-a.jpg"
    assert own_a in await world.keys()

    assert await delete(world, a) == "started"

    assert await records_of(world, a) == NOTHING
    assert await world.repository.get_request(a) is None
    keys = await world.keys()
    assert f"outputs/output_{a}.csv" not in keys and own_a not in keys
    # B's image and its links stay; the image only A used waits for the collector.
    shared = {doc["_id"]: doc async for doc in world.db[documents.OUTPUTS].find()}
    assert (await world.refs(cat), shared[cat]["released_at"]) == ([b], None)
    assert await world.refs(fox) == [] and shared[fox]["released_at"] is not None
    assert {shared[cat]["key"], shared[fox]["key"], f"outputs/output_{b}.csv"} <= set(keys)
    assert (await records_of(world, b))["products"] == 1
    assert await world.repository.get_request(b) is not None

    assert await delete(world, a) == "not_found"


async def test_a_request_not_finished_yet_is_not_deleted(world: World) -> None:
    request_id = await accepted_request(world.mongo, world.ns, [2])

    assert await delete(world, request_id) == "not_final"

    assert await records_of(world, request_id) == NOTHING | {"requests": 1, "row_batches": 1}
    doc = await world.repository.get_request(request_id)
    assert doc is not None and "deleting_since" not in doc


async def test_another_tenants_request_is_not_found_and_stays(world: World) -> None:
    request_id = await world.finished(["own-x"], tenant="alpha")

    assert await delete(world, request_id, owner="beta") == "not_found"
    assert (await records_of(world, request_id))["requests"] == 1

    assert await delete(world, request_id, owner="alpha") == "started"
    assert await records_of(world, request_id) == NOTHING


async def test_a_deletion_cut_short_is_hidden_at_once_and_a_repeat_finishes_it(
    world: World,
) -> None:
    request_id = await world.finished(["cat", "own-x"])
    # A DELETE that died right after marking the request.
    await world.retention.start_deleting(request_id, None, datetime.now(UTC))

    assert await world.repository.get_request(request_id) is None
    assert request_id not in [d["_id"] for d in await world.repository.recent_requests(10)]
    assert await world.cache.snapshot(request_id, None) is None

    assert await delete(world, request_id) == "started"
    assert await records_of(world, request_id) == NOTHING
    assert [k for k in await world.keys() if request_id in k] == []


async def test_the_collector_finishes_a_deletion_left_unfinished(world: World) -> None:
    request_id = await world.finished(["cat", "own-x"])
    await world.retention.start_deleting(request_id, None, datetime.now(UTC))

    # While its DELETE may still be at work, the collector leaves it alone.
    assert (await world.collect()).deletions_finished == 0
    assert (await records_of(world, request_id))["requests"] == 1

    later = STALLED_DELETION.total_seconds() + 1
    assert (await world.collect(later=later)).deletions_finished == 1
    assert await records_of(world, request_id) == NOTHING
    assert [k for k in await world.keys() if request_id in k] == []


@pytest.mark.parametrize("store", ["s3"], indirect=True)
async def test_a_store_failing_midway_leaves_the_deletion_to_be_finished_by_the_next_delete(
    world: World, local_s3: LocalS3
) -> None:
    """Through a proxy that answers 503 SlowDown to every DELETE of objects."""
    proxy = FaultyS3(local_s3.url, free_port())
    await proxy.up()
    bucket = await new_bucket(local_s3.url)
    env = {k.lower(): v for k, v in s3_env(proxy.url, bucket).items() if k.startswith("S")}
    try:
        async with open_file_store(StorageSettings(**env)) as failing:  # type: ignore[arg-type]
            world.files = failing
            request_id = await world.finished(["own-x", "cat"])
            proxy.failing = lambda request: request.method == "POST" and "delete" in request.query

            with pytest.raises(StoreUnavailable):
                await delete(world, request_id)
            assert await world.repository.get_request(request_id) is None
            assert (await records_of(world, request_id))["requests"] == 1
            assert proxy.refused > 0

            proxy.failing = lambda request: False
            assert await delete(world, request_id) == "started"
        assert await records_of(world, request_id) == NOTHING
        assert [k for k in await keys_in(local_s3.url, bucket) if request_id in k] == []
    finally:
        await proxy.close()


async def test_deleting_a_request_of_many_rows_removes_every_product(world: World) -> None:
    rows = 2_001  # more than two writes' worth of product ids
    request_id = uuid.uuid4().hex
    done = datetime.now(UTC)
    await world.db[documents.REQUESTS].insert_one(
        documents.request_document(request_id, rows, 0, None, done)
        | {"status": "Completed", "completed_at": done}
    )
    await world.db[documents.PRODUCTS].insert_many(
        [
            documents.product_document(request_id, row, row + 1, f"SKU{row}", [], [], [])
            for row in range(rows)
        ]
    )

    assert await delete(world, request_id) == "started"

    assert await records_of(world, request_id) == NOTHING
