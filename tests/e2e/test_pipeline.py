"""The seed's workflow end to end: upload, processing, status, output CSV, webhook, events."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from tests.conftest import SAMPLE_IMAGES
from tests.e2e.conftest import (
    WEBHOOK_SECRET,
    Origin,
    RunningStack,
    S3Stack,
    Subscriber,
    WebhookReceiver,
    eventually,
)


def seed_csv(origin: str) -> str:
    """The seed's format: several rows, several URLs in a quoted cell, one broken URL, and
    two different URLs that end in the same file name."""
    return (
        "S. No.,Product Name,Input Image Urls\r\n"
        f'1,SKU1,"{origin}/cat.jpg, {origin}/coffee.jpg"\r\n'
        f'2,"Mug, ""large""",{origin}/astronaut.jpg\r\n'
        f'3,SKU3,"{origin}/hubble.jpg,{origin}/missing.jpg,{origin}/other/cat.jpg"\r\n'
    )


def quality_50_tables() -> dict[int, list[int]]:
    """The quantisation tables libjpeg writes at quality 50, read back from a fresh encode."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 60, 30)).save(buffer, "JPEG", quality=50)
    with Image.open(buffer) as reference:
        return {k: list(v) for k, v in reference.quantization.items()}


async def upload(
    session: aiohttp.ClientSession, stack: RunningStack, text: str, webhook_url: str
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
    form.add_field("webhook_url", webhook_url)
    async with session.post(f"{stack.ingest_url}/upload/", data=form) as response:
        assert response.status == 202, await response.text()
        body: dict[str, Any] = await response.json()
    return body


async def wait_for_final_status(session: aiohttp.ClientSession, status_url: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        async with session.get(status_url) as response:
            body: dict[str, Any] = await response.json()
        return body if body["status"] in ("Completed", "Failed") else None

    result: dict[str, Any] = await eventually(final)  # type: ignore[assignment]
    return result


@dataclass
class Backend:
    """A running stack on one storage backend, with where its files must come from."""

    stack: RunningStack
    subscriber: Subscriber
    files_base: str
    s3: S3Stack | None = None


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "local":
        stack: RunningStack = request.getfixturevalue("running_stack")
        return Backend(stack, request.getfixturevalue("subscriber"), f"{stack.status_url}/files/")
    s3: S3Stack = request.getfixturevalue("running_s3_stack")
    return Backend(
        s3.running,
        request.getfixturevalue("s3_subscriber"),
        f"{s3.endpoint_url}/{s3.bucket}/",
        s3,
    )


async def test_seed_csv_is_processed_end_to_end(
    backend: Backend, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    """With either backend; with s3, every file comes straight from the bucket and neither
    the processor's nor the status service's data directory holds anything."""
    running_stack, subscriber = backend.stack, backend.subscriber
    o = origin.base_url
    async with aiohttp.ClientSession() as session:
        accepted = await upload(session, running_stack, seed_csv(o), webhook_receiver.url)
        request_id = accepted["request_id"]
        assert accepted["status_url"] == f"{running_stack.status_url}/status/{request_id}"

        status = await wait_for_final_status(session, accepted["status_url"])
        assert status["status"] == "Completed"
        assert status["progress"] == {"total": 6, "processed": 5, "failed": 1}
        assert status["failures_by_reason"] == {"http_404": 1}
        assert status["failures"] == [
            {
                "row": 3,
                "position": 2,
                "url": f"{o}/missing.jpg",
                "reason": "http_404",
                "detail": "the server answered 404 Not Found",
            }
        ]
        sizes = {p.name: p.stat().st_size for p in SAMPLE_IMAGES.glob("*.jpg")}
        assert status["bytes_in"] == sum(
            sizes[n] for n in ("cat.jpg", "coffee.jpg", "astronaut.jpg", "hubble.jpg", "cat.jpg")
        )

        assert status["output_csv_url"].startswith(backend.files_base)
        async with session.get(status["output_csv_url"], allow_redirects=False) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
            rows = list(csv.reader(io.StringIO(await response.text())))
        assert rows[0] == [
            "S. No.",
            "Product Name",
            "Input Image Urls",
            "Output Image Urls",
            "Errors",
        ]
        assert [r[:3] for r in rows[1:]] == [
            ["1", "SKU1", f"{o}/cat.jpg,{o}/coffee.jpg"],
            ["2", 'Mug, "large"', f"{o}/astronaut.jpg"],
            ["3", "SKU3", f"{o}/hubble.jpg,{o}/missing.jpg,{o}/other/cat.jpg"],
        ]
        outputs = [r[3].split(",") for r in rows[1:]]
        assert [len(o) for o in outputs] == [2, 1, 3]
        assert outputs[2][1] == "", "the failed image leaves its position empty"
        assert "missing.jpg -> http_404" in rows[3][4]
        assert rows[1][4] == rows[2][4] == ""

        sources = [["cat.jpg", "coffee.jpg"], ["astronaut.jpg"], ["hubble.jpg", None, "cat.jpg"]]
        expected_tables = quality_50_tables()
        output_urls = [u for row in outputs for u in row if u]
        # /cat.jpg and /other/cat.jpg are the same bytes: one stored output serves both (on
        # s3 each link is presigned when its image is done, so only the object is the same).
        stored = [urlsplit(u).path for u in output_urls]
        assert len(set(stored)) == 4
        assert urlsplit(outputs[0][0]).path == urlsplit(outputs[2][2]).path
        bytes_out = 0
        for row_outputs, row_sources in zip(outputs, sources, strict=True):
            for url, source in zip(row_outputs, row_sources, strict=True):
                if source is None:
                    continue
                assert url.startswith(backend.files_base), url
                async with session.get(url, allow_redirects=False) as response:
                    assert response.status == 200, url
                    assert response.headers["Content-Type"] == "image/jpeg"
                    data = await response.read()
                bytes_out += len(data)
                with (
                    Image.open(io.BytesIO(data)) as produced,
                    Image.open(SAMPLE_IMAGES / source) as original,
                ):
                    produced.load()
                    assert produced.format == "JPEG"
                    assert produced.size == original.size
                    assert {k: list(v) for k, v in produced.quantization.items()} == (
                        expected_tables
                    )

        assert status["bytes_out"] == bytes_out
        if backend.s3 is not None:
            assert [p for d in backend.s3.data_dirs for p in d.rglob("*")] == []

        async def webhook_recorded() -> dict[str, Any] | None:
            async with session.get(accepted["status_url"]) as response:
                body: dict[str, Any] = await response.json()
            return body if body["webhook"] else None

        final = await eventually(webhook_recorded)
        assert final["webhook"]["status"] == "delivered"  # type: ignore[index]

    calls = [c for c in webhook_receiver.calls if orjson.loads(c.body)["request_id"] == request_id]
    assert len(calls) == 1
    payload = Webhook(WEBHOOK_SECRET).verify(calls[0].body, calls[0].headers)
    assert payload["status"] == "Completed"
    # The same file; the status signs its link afresh on every call (presigned with s3).
    assert urlsplit(payload["output_csv_url"]).path == urlsplit(status["output_csv_url"]).path
    assert (payload["total"], payload["processed"], payload["failed"]) == (6, 5, 1)

    async def completion_event() -> list[dict[str, Any]]:
        return [
            orjson.loads(m.body)
            for m in subscriber.messages
            if m.routing_key == "request.completed"
            and orjson.loads(m.body)["request_id"] == request_id
        ]

    events = await eventually(completion_event)
    assert events[0]["status"] == "Completed"  # type: ignore[index]
    assert events[0]["event_id"] == calls[0].headers["webhook-id"]  # type: ignore[index]


async def test_the_same_file_uploaded_twice_completes_twice_with_the_same_outputs(
    running_stack: RunningStack, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    text = seed_csv(origin.base_url)
    async with aiohttp.ClientSession() as session:
        first, second = [
            await upload(session, running_stack, text, webhook_receiver.url) for _ in range(2)
        ]
        assert first["request_id"] != second["request_id"]
        results = [await wait_for_final_status(session, r["status_url"]) for r in (first, second)]
        assert [r["progress"] for r in results] == [{"total": 6, "processed": 5, "failed": 1}] * 2
        tables = []
        for result in results:
            async with session.get(result["output_csv_url"]) as response:
                tables.append(list(csv.reader(io.StringIO(await response.text()))))
    assert [r[:3] for r in tables[0]] == [r[:3] for r in tables[1]]
    first_outputs = {u for r in tables[0][1:] for u in r[3].split(",") if u}
    second_outputs = {u for r in tables[1][1:] for u in r[3].split(",") if u}
    # The same sources, the same settings: one stored output each, shared by both requests
    # (the two cat.jpg are the same bytes).
    assert first_outputs == second_outputs
    assert len(first_outputs) == 4


async def test_an_unknown_request_id_gets_404(running_stack: RunningStack) -> None:
    url = f"{running_stack.status_url}/status/{'f' * 32}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 404
        assert "no request with id" in (await response.json())["detail"]


async def test_a_rejected_upload_names_the_line_and_the_problem(
    running_stack: RunningStack,
) -> None:
    text = "S. No.,Product Name,Input Image Urls\n1,SKU1,http://a.test/x.jpg\n2,SKU2,not-a-url\n"
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="bad.csv", content_type="text/csv")
    url = f"{running_stack.ingest_url}/upload/"
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        assert response.status == 422
        body = await response.json()
    assert body["problems"] == [
        {"line": 3, "message": "URL 'not-a-url' must start with http:// or https://"}
    ]
