"""The whole system as separate processes, plus the outside world it talks to: an image
origin, a webhook receiver and a subscriber bound to `imgpipe.events`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiohttp import web

from imgpipe_dev.infra import free_port
from imgpipe_dev.s3local import LocalS3, s3_env
from imgpipe_dev.stack import MODULES, Stack
from tests.conftest import SAMPLE_IMAGES, Namespace, new_namespace, serving
from tests.s3 import new_bucket

WEBHOOK_SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLWltZ3BpcGUtZTJlLXRlc3Rz"


@dataclass
class RunningStack:
    stack: Stack
    ingest_url: str
    status_url: str
    notifier_url: str
    data_dir: Path


@contextlib.contextmanager
def stack_running(
    namespace: Namespace,
    root: Path,
    extra_env: dict[str, str],
    service_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[RunningStack]:
    """The four services as processes in `namespace`, logs printed when they stop;
    `service_env` adds variables for one service only (e.g. its own DATA_DIR)."""
    ports = {name: str(free_port()) for name in ("INGEST_PORT", "STATUS_PORT", "NOTIFIER_PORT")}
    env = (
        os.environ
        | namespace.env()
        | ports
        | {
            "DATA_DIR": str(root / "files"),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['STATUS_PORT']}",
            "INGEST_PUBLIC_URL": f"http://127.0.0.1:{ports['INGEST_PORT']}",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WORKERS": "2",
            "LOG_LEVEL": "INFO",
            "METRICS_PORT": str(free_port()),
        }
        | extra_env
    )
    stack = Stack(env, log_dir=root / "logs")
    try:
        for name in MODULES:
            stack.start_one(name, env=(service_env or {}).get(name))
        stack.wait_healthy()
        yield RunningStack(
            stack,
            ingest_url=f"http://127.0.0.1:{ports['INGEST_PORT']}",
            status_url=f"http://127.0.0.1:{ports['STATUS_PORT']}",
            notifier_url=f"http://127.0.0.1:{ports['NOTIFIER_PORT']}",
            data_dir=root / "files",
        )
    finally:
        stack.stop()
        for log in sorted((root / "logs").glob("*.log")):
            print(f"----- {log.name} -----\n{log.read_text()[-6000:]}")


@pytest.fixture(scope="session")
def running_stack(
    namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The seed's set-up: local image servers allowed."""
    root = tmp_path_factory.mktemp("stack")
    with stack_running(namespace, root, {"IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true"}) as running:
        yield running


@dataclass
class S3Stack:
    """A stack on the s3 backend: processor and status each with a data directory of its
    own, so that nothing can pass between them through a disk."""

    running: RunningStack
    endpoint_url: str
    bucket: str
    data_dirs: list[Path]


@pytest.fixture(scope="session")
async def s3_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="session")
async def running_s3_stack(
    s3_namespace: Namespace, local_s3: LocalS3, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[S3Stack]:
    root = tmp_path_factory.mktemp("s3-stack")
    bucket = await new_bucket(local_s3.url)
    dirs = {name: root / f"{name}-files" for name in ("processor", "status")}
    env = s3_env(local_s3.url, bucket) | {"IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true"}
    per_service = {name: {"DATA_DIR": str(path)} for name, path in dirs.items()}
    with stack_running(s3_namespace, root, env, per_service) as running:
        yield S3Stack(running, local_s3.url, bucket, list(dirs.values()))


@dataclass
class Origin:
    """A local HTTP server with real photos; every other path is a 404."""

    base_url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
async def origin() -> AsyncIterator[Origin]:
    port = free_port()
    served = Origin(f"http://127.0.0.1:{port}")

    async def image(request: web.Request) -> web.StreamResponse:
        served.requests.append(request.path)
        path = SAMPLE_IMAGES / request.match_info["name"]
        if request.match_info["name"] not in {p.name for p in SAMPLE_IMAGES.glob("*.jpg")}:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{folder:.*}/{name}", image)
    app.router.add_get("/{name}", image)
    async with serving(app, port):
        yield served


@dataclass
class ReceivedCall:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    url: str
    calls: list[ReceivedCall] = field(default_factory=list)


async def webhook_payload(receiver: WebhookReceiver, request_id: str) -> dict[str, Any]:
    """The body of the webhook the receiver got for `request_id` (waits for it)."""

    async def delivered() -> dict[str, Any] | None:
        for call in receiver.calls:
            payload: dict[str, Any] = json.loads(call.body)
            if payload["request_id"] == request_id:
                return payload
        return None

    result: dict[str, Any] = await eventually(delivered)  # type: ignore[assignment]
    return result


@pytest.fixture(scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    port = free_port()
    receiver = WebhookReceiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        receiver.calls.append(ReceivedCall(headers, await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app, port):
        yield receiver


@dataclass
class Subscriber:
    """Another team's service: its own queue bound to every event on `imgpipe.events`."""

    messages: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)


@pytest.fixture(scope="session")
async def subscriber(
    running_stack: RunningStack, namespace: Namespace
) -> AsyncIterator[Subscriber]:
    async with subscribed(namespace) as seen:
        yield seen


@pytest.fixture(scope="session")
async def s3_subscriber(
    running_s3_stack: S3Stack, s3_namespace: Namespace
) -> AsyncIterator[Subscriber]:
    async with subscribed(s3_namespace) as seen:
        yield seen


@contextlib.asynccontextmanager
async def subscribed(namespace: Namespace) -> AsyncIterator[Subscriber]:
    connection = await aio_pika.connect_robust(namespace.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.get_exchange(namespace.prefix + "imgpipe.events")
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="#")
    seen = Subscriber()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.messages.append(message)
        await message.ack()

    await queue.consume(on_message)
    yield seen
    await connection.close()


async def eventually(check: object, within: float = 60, interval: float = 0.2) -> object:
    """Poll `check` (an async callable) until it returns something truthy, or fail."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()  # type: ignore[operator]
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)
