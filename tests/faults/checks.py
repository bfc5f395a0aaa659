"""Driving a fault-test system and checking its results exactly."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
from pymongo import AsyncMongoClient
from standardwebhooks.webhooks import Webhook

from imgpipe_contracts import documents
from imgpipe_contracts.topology import ALL_QUEUES, NOTIFIER_REQUEST_COMPLETED
from imgpipe_runtime.deadletters import dead_letter_counts
from tests.faults.conftest import WEBHOOK_SECRET, Origin, Receiver, System

# A shared output's name: the hash of its source's bytes and the settings.
OUTPUT_NAME = re.compile(r"[0-9a-f]{64}\.jpg")


def images_csv(origin: Origin, rows: int, per_row: int) -> str:
    """`rows` products with `per_row` distinct image URLs each (numbered from 0)."""
    lines = ["S. No.,Product Name,Input Image Urls"]
    for row in range(rows):
        urls = ",".join(f"{origin.base_url}/img/{row * per_row + p}.jpg" for p in range(per_row))
        lines.append(f'{row + 1},SKU-{row + 1},"{urls}"')
    return "\r\n".join(lines) + "\r\n"


async def upload(http: aiohttp.ClientSession, system: System, text: str, webhook_url: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
    form.add_field("webhook_url", webhook_url)
    async with http.post(f"{system.ingest_url}/upload/", data=form) as response:
        assert response.status == 202, await response.text()
        request_id: str = (await response.json())["request_id"]
    return request_id


async def status(http: aiohttp.ClientSession, system: System, request_id: str) -> dict[str, Any]:
    async with http.get(f"{system.status_url}/status/{request_id}") as response:
        body: dict[str, Any] = await response.json()
        return body


async def wait_for(
    http: aiohttp.ClientSession,
    system: System,
    request_id: str,
    *,
    outcomes: int | None = None,
    final: bool = False,
    within: float = 180,
) -> dict[str, Any]:
    """Poll the status until `outcomes` images have one, or until it is final."""
    deadline = asyncio.get_running_loop().time() + within
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await status(http, system, request_id)
        except aiohttp.ClientError:
            last = {}  # the status service may be the one restarting
        if last:
            done = last["progress"]["processed"] + last["progress"]["failed"]
            if final and last["status"] in ("Completed", "Failed"):
                return last
            if outcomes is not None and done >= outcomes:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} did not get there within {within}s: {last}")


async def wait_for_webhook(
    http: aiohttp.ClientSession, system: System, request_id: str, within: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        body = await status(http, system, request_id)
        if body.get("webhook") and body["webhook"]["status"] in ("delivered", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"no final webhook outcome for {request_id} within {within}s")


async def nothing_left_to_send(system: System, request_id: str) -> None:
    """No completion is waiting to be (re)published and the notifier has nothing queued, so
    no further webhook for this request can arrive."""
    async with AsyncMongoClient[dict[str, Any]](system.database.url) as client:
        request = await client[system.ns.database][documents.REQUESTS].find_one({"_id": request_id})
    assert request is not None and "outbox_pending" not in request
    topology = system.ns.broker_settings().topology()
    names = [topology.queue(NOTIFIER_REQUEST_COMPLETED)] + [
        topology.retry_queue(NOTIFIER_REQUEST_COMPLETED, d)
        for d in topology.retry_delays(NOTIFIER_REQUEST_COMPLETED)
    ]
    connection = await aio_pika.connect(system.ns.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            assert queue.declaration_result.message_count == 0, name


async def dead_letters(system: System) -> dict[str, int]:
    connection = await aio_pika.connect(system.ns.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        return await dead_letter_counts(channel, system.ns.broker_settings().topology())


async def assert_exact_result(
    http: aiohttp.ClientSession,
    system: System,
    receiver: Receiver,
    request_id: str,
    rows: int,
    per_row: int,
) -> None:
    """Every image has exactly one outcome, the CSV is complete and in order, each processed
    file exists once under its one name, the webhook came once, nothing was dead-lettered."""
    total = rows * per_row
    final = await wait_for(http, system, request_id, final=True)
    assert final["status"] == "Completed"
    assert final["progress"] == {"total": total, "processed": total, "failed": 0}

    async with AsyncMongoClient[dict[str, Any]](system.database.url) as client:
        db = client[system.ns.database]
        facts = await db[documents.IMAGES].count_documents({"request_id": request_id})
        unprocessed = await db[documents.PRODUCTS].count_documents(
            {"request_id": request_id, "processed": False}
        )
    assert (facts, unprocessed) == (total, 0)

    async with http.get(final["output_csv_url"]) as response:
        table = list(csv.reader(io.StringIO(await response.text())))
    assert len(table) == rows + 1
    expected_names = set()
    for row, cells in enumerate(table[1:]):
        assert cells[0] == str(row + 1)
        outputs = cells[3].split(",")
        assert len(outputs) == per_row
        names = [urlsplit(u).path.rsplit("/", 1)[1] for u in outputs]
        assert all(OUTPUT_NAME.fullmatch(name) for name in names), names
        expected_names.update(names)
        assert cells[4] == ""
    # Every image is a source of its own (see Origin): one stored output each, no other.
    assert len(expected_names) == total
    assert await system.stored_images("shared") == expected_names
    assert await system.stored_images(request_id) == set()

    await wait_for_webhook(http, system, request_id)
    await nothing_left_to_send(system, request_id)
    calls = receiver.for_request(request_id)
    assert len(calls) == 1
    Webhook(WEBHOOK_SECRET).verify(calls[0].body, calls[0].headers)
    counts = await dead_letters(system)
    assert len(counts) == len(ALL_QUEUES) and set(counts.values()) == {0}, counts
