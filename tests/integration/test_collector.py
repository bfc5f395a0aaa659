"""The collector on the real database, with each file store: outputs nobody refers to go after
the grace period (file, sources, record), never one a processor refers to again, each once
when several collectors run at once; RETENTION_DAYS expires old finished requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from imgpipe_contracts import documents
from imgpipe_processor.caching import SHARED_SCOPE, shared_key
from imgpipe_processor.sources import OutputBeingRemoved, output_about
from imgpipe_status.collector import delete_request
from tests.integration.retention_world import RECORDS, World, credentials, store, world
from tests.integration.test_status_aggregation import accepted_request

__all__ = ["credentials", "store", "world"]

HOUR = 3600


async def deleted(world: World, request_id: str) -> None:
    started, _ = await delete_request(
        request_id, None, retention=world.retention, files=world.files, progress_cache=world.cache
    )
    assert started == "started"


async def nothing_left(world: World) -> dict[str, object]:
    """Every record and every file of the world, by collection (empty ones left out)."""
    left: dict[str, object] = {name: await world.count(name) for name in RECORDS}
    left = {name: n for name, n in left.items() if n}
    if keys := await world.keys():
        left["files"] = keys
    return left


async def test_an_output_nobody_refers_to_goes_after_the_grace_period_with_its_sources(
    world: World,
) -> None:
    a = await world.finished(["cat", "fox", "own-a"])
    b = await world.finished(["cat"])
    await deleted(world, a)

    # fox is unreferenced, but within its grace period; cat is still B's.
    assert (await world.collect()).outputs_removed == 0
    assert (await world.collect(later=HOUR + 1)).outputs_removed == 1
    assert shared_key(world.output("fox")) not in await world.keys()
    assert await world.count(documents.SOURCES, {"output_id": world.output("fox")}) == 0
    assert await world.count(documents.OUTPUTS, {"_id": world.output("cat")}) == 1
    assert shared_key(world.output("cat")) in await world.keys()

    await deleted(world, b)
    assert (await world.collect(later=HOUR - 60)).outputs_removed == 0
    assert (await world.collect(later=HOUR + 1)).outputs_removed == 1
    assert await nothing_left(world) == {}


async def test_an_output_referred_to_again_before_the_claim_stays(world: World) -> None:
    a = await world.finished(["cat"])
    await deleted(world, a)
    cat = world.output("cat")
    # A processor reuses it for a new request just before the collector looks.
    assert await world.sources.use_output(cat, "later-request") is not None

    assert (await world.collect(later=HOUR + 1)).outputs_removed == 0
    doc = await world.db[documents.OUTPUTS].find_one({"_id": cat})
    assert doc is not None and doc["state"] == "ready"
    assert await world.refs(cat) == ["later-request"]
    assert shared_key(cat) in await world.keys()


async def test_once_claimed_an_output_takes_no_new_reference_until_it_is_gone(
    world: World,
) -> None:
    a = await world.finished(["cat"])
    await deleted(world, a)
    cat = world.output("cat")
    now = datetime.now(UTC) + timedelta(seconds=HOUR + 1)
    token = await world.retention.claim_output(cat, now - timedelta(seconds=HOUR), now)
    assert token

    # What a processor meeting the same source does meanwhile: reuse it, or make it again.
    assert await world.sources.use_output(cat, "later-request") is None
    about = output_about(SHARED_SCOPE, shared_key(cat), 10, 10, "JPEG", 100, 20)
    with pytest.raises(OutputBeingRemoved):
        await world.sources.add_output(cat, about, "later-request", now)
    # Nor may a second collector claim it while the first is at work.
    assert not await world.retention.claim_output(cat, now - timedelta(seconds=HOUR), now)

    await world.files.delete([shared_key(cat)])
    await world.retention.drop_output(cat, token)
    # Gone: the processor's retry makes it anew, as a ready output of the new request's.
    await world.sources.add_output(cat, about, "later-request", now)
    doc = await world.db[documents.OUTPUTS].find_one({"_id": cat})
    assert doc is not None and doc["state"] == "ready"
    assert await world.refs(cat) == ["later-request"]


async def test_an_output_a_collector_left_half_removed_is_finished_after_the_grace_period(
    world: World,
) -> None:
    a = await world.finished(["cat"])
    await deleted(world, a)
    cat = world.output("cat")
    claimed_at = datetime.now(UTC) + timedelta(seconds=HOUR + 1)
    # A collector claims it, then dies before deleting anything.
    assert await world.retention.claim_output(cat, claimed_at - timedelta(seconds=HOUR), claimed_at)

    # Another collector soon after leaves it to its owner; once the claim is old, it takes over.
    assert (await world.collect(later=HOUR + 60)).outputs_removed == 0
    assert shared_key(cat) in await world.keys()
    assert (await world.collect(later=2 * HOUR + 60)).outputs_removed == 1
    assert await nothing_left(world) == {}


async def test_collectors_running_at_once_remove_each_output_exactly_once(world: World) -> None:
    names = [f"photo-{n}" for n in range(24)]
    request_id = await world.finished(names)
    await deleted(world, request_id)

    rounds = await asyncio.gather(*(world.collect(later=HOUR + 1) for _ in range(3)))

    assert sum(r.outputs_removed for r in rounds) == len(names)
    assert await nothing_left(world) == {}


async def test_retention_days_expires_finished_requests_completed_before_it_and_nothing_else(
    world: World,
) -> None:
    old = await world.finished(["cat", "own-old"])
    recent = await world.finished(["cat", "own-recent"])
    unfinished = await accepted_request(world.mongo, world.ns, [1])
    requests = world.db[documents.REQUESTS]
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    await requests.update_one({"_id": old}, {"$set": {"completed_at": ten_days_ago}})
    await requests.update_one({"_id": unfinished}, {"$set": {"created_at": ten_days_ago}})

    assert (await world.collect(days=0)).requests_expired == 0
    assert (await world.collect(days=7)).requests_expired == 1

    remaining = {doc["_id"] async for doc in requests.find()}
    assert remaining == {recent, unfinished}
    assert [k for k in await world.keys() if old in k] == []
    assert await world.refs(world.output("cat")) == [recent]
