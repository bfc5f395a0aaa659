"""Nothing lost, nothing done twice: processes, the broker and the database die mid-request."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from tests.e2e.conftest import eventually
from tests.faults.checks import assert_exact_result, images_csv, upload, wait_for
from tests.faults.conftest import Origin, Receiver, System

ROWS, PER_ROW = 250, 2  # 500 images in flight
HALF = ROWS * PER_ROW // 2


async def broker_reported_lost(http: aiohttp.ClientSession, system: System) -> None:
    """Ingest's and status's /healthz answer 503 with `broker: false` while the broker is gone
    (the container healthchecks rely on it)."""
    deadline = asyncio.get_running_loop().time() + 30
    for url in (system.ingest_url, system.status_url):
        while True:
            async with http.get(f"{url}/healthz") as response:
                body = await response.json()
            if response.status == 503 and body["broker"] is False:
                break
            assert asyncio.get_running_loop().time() < deadline, f"{url}/healthz: {body}"
            await asyncio.sleep(0.1)


async def test_a_processor_killed_halfway_loses_and_repeats_nothing(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    system.restart("processor")
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)


async def test_a_processor_killed_while_fetching_new_sources_leaves_them_to_the_next_one(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    rows, per_row = 50, 2
    origin.delay = 1.0  # every source is held (leased) for a second while it downloads
    request_id = await upload(
        http, system, images_csv(origin, rows, per_row), f"{receiver.base_url}/ok"
    )

    async def downloading() -> bool:
        return sum(origin.hits.values()) >= 8

    await eventually(downloading, within=30, interval=0.05)
    system.stack.kill("processor")
    origin.delay = 0.0
    async with AsyncMongoClient[dict[str, Any]](system.database.url) as client:
        db = client[system.ns.database]
        held_by_the_dead = await db[documents.SOURCE_LEASES].count_documents({})
        system.stack.start_one("processor")
        await assert_exact_result(http, system, receiver, request_id, rows, per_row)
        # Every source the dead processor held was made by the next one, once.
        recorded = await db[documents.SOURCES].count_documents({"sha256": {"$exists": True}})
        outputs = await db[documents.OUTPUTS].count_documents({})
    assert held_by_the_dead > 0
    assert (recorded, outputs) == (rows * per_row, rows * per_row)


async def test_a_status_service_killed_halfway_completes_and_calls_back_once(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    system.restart("status")
    system.stack.wait_healthy()
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)


async def test_a_database_outage_of_ten_seconds_delays_but_loses_nothing(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    system.kill_database()
    await asyncio.sleep(10)  # the outage itself is what is under test
    system.start_database()
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)


async def test_a_broker_killed_halfway_and_restarted_loses_and_repeats_nothing(
    system_on_private_rabbit: System,
    origin: Origin,
    receiver: Receiver,
    http: aiohttp.ClientSession,
) -> None:
    system = system_on_private_rabbit
    assert system.rabbit is not None
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    system.rabbit.kill()
    await broker_reported_lost(http, system)
    system.rabbit.start()
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)


async def test_two_processors_and_two_status_consumers_give_the_same_result(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    system.stack.start_one("processor", instance="2")
    system.stack.start_one("status", instance="2", env={"STATUS_PORT": "0"})
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)
