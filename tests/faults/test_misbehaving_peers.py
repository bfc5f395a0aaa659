"""Origins, receivers and messages that misbehave: retried, recorded, never blocking the rest."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from typing import Any

import aio_pika
import aiohttp
import orjson
from pymongo import AsyncMongoClient
from standardwebhooks.webhooks import Webhook

from imgpipe_contracts import documents
from imgpipe_contracts.topology import ALL_QUEUES, PROCESSOR_IMAGE_REQUESTED
from imgpipe_dev.infra import free_port
from tests.faults.checks import (
    dead_letters,
    images_csv,
    upload,
    wait_for,
    wait_for_webhook,
)
from tests.faults.conftest import WEBHOOK_SECRET, Origin, Receiver, System

ATTEMPTS = 3  # RETRY_DELAYS "0.2,0.5" in the test namespace: two retries
WEBHOOK_ATTEMPTS = 4  # WEBHOOK_RETRY_DELAYS "0.3,0.6,1"


async def test_a_flaky_origin_succeeds_after_retries_and_a_dead_one_fails_without_blocking(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    o = origin.base_url
    rows = [f"1,FLAKY,{o}/flaky/a.jpg", f"2,DOWN,{o}/down/b.jpg"]
    rows += [f"{n + 3},SKU{n},{o}/img/{n}.jpg" for n in range(20)]
    text = "S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n"
    request_id = await upload(http, system, text, f"{receiver.base_url}/ok")

    final = await wait_for(http, system, request_id, final=True)
    assert final["progress"] == {"total": 22, "processed": 21, "failed": 1}
    assert origin.hits["/flaky/a.jpg"] == 3
    assert origin.hits["/down/b.jpg"] == ATTEMPTS

    async with http.get(final["output_csv_url"]) as response:
        table = list(csv.reader(io.StringIO(await response.text())))
    assert table[1][3] != "" and table[1][4] == ""
    assert table[2][3] == ""
    assert table[2][4] == f"{o}/down/b.jpg -> http_503: the server answered 503 Service Unavailable"

    async with AsyncMongoClient[dict[str, Any]](system.database.url) as client:
        images = client[system.ns.database][documents.IMAGES]
        dead = await images.find_one({"_id": f"{request_id}:1:0"})
        others = [d async for d in images.find({"request_id": request_id, "row_index": {"$gt": 1}})]
    assert dead is not None
    assert (dead["outcome"], dead["reason"], dead["attempts"]) == ("failed", "http_503", ATTEMPTS)
    # Recorded before it, or in the same batch of outcomes: never held back by it.
    assert max(d["recorded_at"] for d in others) <= dead["recorded_at"]


async def test_a_malformed_message_on_a_work_queue_is_dead_lettered_and_work_goes_on(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    topology = system.ns.broker_settings().topology()
    connection = await aio_pika.connect(system.ns.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(b"\x00 definitely not an event", type="image.requested"),
            routing_key=topology.queue(PROCESSOR_IMAGE_REQUESTED),
        )
    request_id = await upload(http, system, images_csv(origin, 5, 2), f"{receiver.base_url}/ok")
    final = await wait_for(http, system, request_id, final=True)
    assert final["progress"] == {"total": 10, "processed": 10, "failed": 0}
    counts = await dead_letters(system)
    assert counts == {spec.base: 0 for spec in ALL_QUEUES} | {
        "processor.image-requested": 1,
    }


async def test_a_webhook_failing_three_times_is_delivered_once_with_one_id(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(http, system, images_csv(origin, 2, 1), f"{receiver.base_url}/flaky")
    final = await wait_for_webhook(http, system, request_id)
    calls = receiver.for_request(request_id)
    assert len(calls) == WEBHOOK_ATTEMPTS
    assert len({c.headers["webhook-id"] for c in calls}) == 1
    for call in calls:
        Webhook(WEBHOOK_SECRET).verify(call.body, call.headers)
    webhook = final["webhook"]
    assert (webhook["status"], webhook["attempts"], webhook["status_code"]) == (
        "delivered",
        WEBHOOK_ATTEMPTS,
        200,
    )
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in webhook["history"]] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
        (4, "delivered", 200),
    ]


async def test_a_webhook_receiver_down_for_the_whole_schedule_ends_failed_in_the_status(
    system: System, origin: Origin, http: aiohttp.ClientSession
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    request_id = await upload(http, system, images_csv(origin, 2, 1), nobody)
    final = await wait_for_webhook(http, system, request_id)
    webhook = final["webhook"]
    assert (webhook["status"], webhook["attempts"]) == ("failed", WEBHOOK_ATTEMPTS)
    assert webhook["reason"].startswith("connection:")
    assert [a["attempt"] for a in webhook["history"]] == [1, 2, 3, 4]
    assert final["status"] == "Completed"


async def test_an_operator_can_list_and_replay_what_ended_in_a_dead_letter_queue(
    system: System, origin: Origin, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    system.stack.kill("processor")
    request_id = await upload(http, system, images_csv(origin, 1, 1), f"{receiver.base_url}/ok")
    topology = system.ns.broker_settings().topology()
    connection = await aio_pika.connect(system.ns.rabbitmq_url)
    async with connection:
        # What RabbitMQ does once a message has crashed its consumer DELIVERY_LIMIT times.
        channel = await connection.channel(publisher_confirms=True)
        work = await channel.declare_queue(topology.queue(PROCESSOR_IMAGE_REQUESTED), passive=True)
        job = await work.get(no_ack=False, timeout=10)
        await channel.default_exchange.publish(
            aio_pika.Message(job.body, type=job.type, headers=job.headers),
            routing_key=topology.dlq(PROCESSOR_IMAGE_REQUESTED),
        )
        await job.ack()
    system.stack.start_one("processor")
    env = system.stack.env

    listing = await cli(env, "dlq", "list", "--json", "--show", "1")
    assert listing.returncode == 0
    [processor, *others] = orjson.loads(listing.stdout)
    assert (processor["queue"], processor["dead_letters"]) == ("processor.image-requested", 1)
    assert processor["examples"][0].startswith("image.requested")
    assert [o["dead_letters"] for o in others] == [0] * (len(ALL_QUEUES) - 1)

    replayed = await cli(env, "dlq", "replay", "processor.image-requested")
    assert (replayed.returncode, replayed.stdout.strip()) == (
        0,
        "replayed 1 message to processor.image-requested",
    )
    final = await wait_for(http, system, request_id, final=True)
    assert final["progress"] == {"total": 1, "processed": 1, "failed": 0}
    assert (await dead_letters(system))["processor.image-requested"] == 0


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "imgpipe_cli", *args],
        env=env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
