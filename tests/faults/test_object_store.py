"""The S3 object store fails mid-request: nothing is lost, nothing is recorded as failed, and
every image still has exactly one outcome."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.faults.checks import assert_exact_result, images_csv, upload, wait_for
from tests.faults.conftest import S3_IMAGES_IN_PROGRESS, Origin, Receiver, System

ROWS, PER_ROW = 250, 2  # 500 images in flight
HALF = ROWS * PER_ROW // 2
SLOW_DOWN_SECONDS = 5.0
CSV_REFUSALS = 6  # two writes of the output CSV, three botocore attempts each


async def test_an_object_store_answering_503_for_a_while_delays_but_fails_nothing(
    system_on_s3: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    system = system_on_s3
    assert system.s3 is not None
    proxy = system.s3.proxy
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)

    # Every request refused for a while, then the first two writes of the output CSV (the
    # status service's side) as well.
    loop = asyncio.get_running_loop()
    until = loop.time() + SLOW_DOWN_SECONDS
    csv_refused = 0

    def slow_down(request: web.Request) -> bool:
        nonlocal csv_refused
        if loop.time() < until:
            return True
        if request.path.endswith(".csv") and request.method == "PUT" and csv_refused < CSV_REFUSALS:
            csv_refused += 1
            return True
        return False

    proxy.failing = slow_down
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)
    assert proxy.refused > CSV_REFUSALS
    assert csv_refused == CSV_REFUSALS


async def test_an_object_store_down_for_ten_seconds_mid_request_loses_nothing(
    system_on_s3: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    system = system_on_s3
    assert system.s3 is not None
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    await system.s3.proxy.down()  # connections refused, and those open cut
    await asyncio.sleep(10)  # the outage itself is what is under test
    await system.s3.proxy.up()
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)
    # At most the images in progress when it went down fetched their image again (seen: 29
    # and 64 of the 64): the others waited for the store before downloading, instead of once
    # every time round the retry queue.
    assert sum(origin.hits.values()) <= ROWS * PER_ROW + S3_IMAGES_IN_PROGRESS
