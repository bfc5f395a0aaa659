"""Driving the stack from outside (its published ports) and checking results exactly."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
from PIL import Image
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.topology import ALL_QUEUES, NOTIFIER_REQUEST_COMPLETED
from imgpipe_runtime.deadletters import dead_letter_counts
from imgpipe_runtime.settings import BrokerSettings
from tests.containers.stack import Stack

ORIGIN = "http://images:8080"  # the image server, as the containers reach it
RECEIVER = "http://notifier:8020/webhook/"  # the notifier's demo receiver, likewise
DATABASE = "imgpipe"  # docker-compose.yml's MONGODB_DB default


def images_csv(image_set: str, rows: int, per_row: int) -> str:
    """`rows` products with `per_row` images each from the origin's folder `image_set`."""
    lines = ["S. No.,Product Name,Input Image Urls"]
    for row in range(rows):
        urls = ",".join(f"{ORIGIN}/{image_set}/{row * per_row + p}.jpg" for p in range(per_row))
        lines.append(f'{row + 1},SKU-{row + 1},"{urls}"')
    return "\r\n".join(lines) + "\r\n"


async def upload(http: aiohttp.ClientSession, stack: Stack, text: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
    form.add_field("webhook_url", RECEIVER)
    async with http.post(f"{stack.url('INGEST')}/upload/", data=form) as response:
        assert response.status == 202, await response.text()
        request_id: str = (await response.json())["request_id"]
    return request_id


async def status(http: aiohttp.ClientSession, stack: Stack, request_id: str) -> dict[str, Any]:
    async with http.get(f"{stack.url('STATUS')}/status/{request_id}") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def wait_for(
    http: aiohttp.ClientSession,
    stack: Stack,
    request_id: str,
    *,
    outcomes: int | None = None,
    within: float = 240,
) -> dict[str, Any]:
    """Poll the status until `outcomes` images have one, or (without `outcomes`) until the
    request is final. A status service that is restarting is waited for."""
    deadline = asyncio.get_running_loop().time() + within
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await status(http, stack, request_id)
        except (aiohttp.ClientError, AssertionError):
            last = {}
        if last:
            done = last["progress"]["processed"] + last["progress"]["failed"]
            if outcomes is None and last["status"] in ("Completed", "Failed"):
                return last
            if outcomes is not None and done >= outcomes:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"request {request_id} did not get there within {within}s: {last}")


async def webhooks_for(
    http: aiohttp.ClientSession, stack: Stack, request_id: str
) -> list[dict[str, Any]]:
    """What the notifier's demo receiver got for this request."""
    async with http.get(f"{stack.url('NOTIFIER')}/webhook/") as response:
        received: list[dict[str, Any]] = await response.json()
    return [w for w in received if w["payload"].get("request_id") == request_id]


async def webhook_settled(
    http: aiohttp.ClientSession, stack: Stack, request_id: str, within: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        body = await status(http, stack, request_id)
        if body.get("webhook") and body["webhook"]["status"] in ("delivered", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"no final webhook outcome for {request_id} within {within}s")


async def queues_settled(stack: Stack, request_id: str) -> None:
    """No completion waits to be (re)published, the notifier has nothing queued, and no
    message of any work queue was dead-lettered: no further webhook can come."""
    async with AsyncMongoClient[dict[str, Any]](stack.mongodb_url) as client:
        request = await client[DATABASE][documents.REQUESTS].find_one({"_id": request_id})
    assert request is not None and "outbox_pending" not in request
    topology = BrokerSettings(rabbitmq_url=stack.rabbitmq_url).topology()
    names = [topology.queue(NOTIFIER_REQUEST_COMPLETED)] + [
        topology.retry_queue(NOTIFIER_REQUEST_COMPLETED, d)
        for d in topology.retry_delays(NOTIFIER_REQUEST_COMPLETED)
    ]
    connection = await aio_pika.connect(stack.rabbitmq_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            assert queue.declaration_result.message_count == 0, name
        counts = await dead_letter_counts(channel, topology)
    assert len(counts) == len(ALL_QUEUES) and set(counts.values()) == {0}, counts


def stored_images(stack: Stack, request_id: str) -> set[str]:
    """The names in the shared `files` volume, as the status container sees it."""
    status_container = stack.containers("status")[0]
    listing = stack.exec(status_container, "ls", f"/data/files/images/{request_id}")
    assert listing.returncode == 0, listing.stderr
    return set(listing.stdout.split())


async def assert_exact_result(
    http: aiohttp.ClientSession, stack: Stack, request_id: str, rows: int, per_row: int
) -> dict[str, Any]:
    """Every image has exactly one outcome, the CSV is complete and in order, each processed
    file exists once under its one name, the webhook came once and was signed. Returns the
    final status (and keeps it in `stack.finished`)."""
    total = rows * per_row
    final = await wait_for(http, stack, request_id)
    assert final["status"] == "Completed", final
    assert final["progress"] == {"total": total, "processed": total, "failed": 0}

    async with AsyncMongoClient[dict[str, Any]](stack.mongodb_url) as client:
        db = client[DATABASE]
        facts = await db[documents.IMAGES].count_documents({"request_id": request_id})
        unprocessed = await db[documents.PRODUCTS].count_documents(
            {"request_id": request_id, "processed": False}
        )
    assert (facts, unprocessed) == (total, 0)

    table = await output_csv(http, final["output_csv_url"])
    assert len(table) == rows + 1
    expected = set()
    for row, cells in enumerate(table[1:]):
        assert cells[0] == str(row + 1)
        names = [f"{row + 1:06d}-{p + 1:02d}-{row * per_row + p}.jpg" for p in range(per_row)]
        assert [urlsplit(u).path.rsplit("/", 1)[1] for u in cells[3].split(",")] == names
        assert cells[4] == ""
        expected.update(names)
    assert stored_images(stack, request_id) == expected

    await webhook_settled(http, stack, request_id)
    await queues_settled(stack, request_id)
    calls = await webhooks_for(http, stack, request_id)
    assert len(calls) == 1, calls
    assert calls[0]["signature_valid"] and calls[0]["payload"]["processed"] == total
    stack.finished[request_id] = final
    return final


async def output_csv(http: aiohttp.ClientSession, url: str) -> list[list[str]]:
    async with http.get(url) as response:
        assert response.status == 200, url
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        return list(csv.reader(io.StringIO(await response.text())))


def quality_50_tables() -> dict[int, list[int]]:
    """The quantisation tables libjpeg writes at quality 50, read back from a fresh encode."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 60, 30)).save(buffer, "JPEG", quality=50)
    with Image.open(buffer) as reference:
        return {k: list(v) for k, v in reference.quantization.items()}  # type: ignore[attr-defined]


async def assert_quality_50_jpeg(
    http: aiohttp.ClientSession, url: str, size: tuple[int, int]
) -> None:
    """`url` downloads a JPEG at quality 50 of the given size."""
    async with http.get(url) as response:
        assert response.status == 200, url
        body = await response.read()
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "JPEG", url
        assert image.size == size, url
        tables = {k: list(v) for k, v in image.quantization.items()}  # type: ignore[attr-defined]
    assert tables == quality_50_tables(), url
