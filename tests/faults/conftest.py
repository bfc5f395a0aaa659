"""A whole system per test, with handles to hurt it: kill or restart any service, the database
(SecantusDB on disk with --sync-on-commit, so a SIGKILL loses nothing acknowledged) and, where
asked, a private RabbitMQ node. Plus an image origin and webhook receivers that misbehave on
purpose."""

from __future__ import annotations

import asyncio
import collections
import io
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from PIL import Image

from imgpipe_dev.infra import SecantusServer, free_port
from imgpipe_dev.otlp import OtlpReceiver
from imgpipe_dev.s3local import LocalS3, s3_env
from imgpipe_dev.stack import Stack
from tests.conftest import SAMPLE_IMAGES, Namespace, new_namespace, serving
from tests.faults.rabbit import PrivateRabbit
from tests.s3 import FaultyS3, keys_in, new_bucket

WEBHOOK_SECRET = "whsec_" + "ZmF1bHQtdGVzdHMtc2VjcmV0LWZvci1pbWdwaXBl"
# The s3 system's images in progress: the images that may be past their store check when the
# store goes down, a small share of the outage tests' requests (the default is 256).
S3_IMAGES_IN_PROGRESS = 64


def small_photos() -> list[bytes]:
    """The sample photos at product-thumbnail size: real images, quick to recompress."""
    photos = []
    for path in sorted(SAMPLE_IMAGES.glob("*.jpg")):
        with Image.open(path) as image:
            image.thumbnail((320, 320))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            photos.append(buffer.getvalue())
    return photos


@dataclass
class Origin:
    """`/img/<n>.jpg` serves photo n % 4 (slowly, `delay` s) with bytes of its own after the
    image's end, so every URL is a source of its own to fetch and encode; `/flaky/<x>.jpg`
    answers 503 twice then the photo; `/down/<x>.jpg` always answers 503. Counts every
    request."""

    base_url: str
    delay: float = 0.0
    hits: collections.Counter[str] = field(default_factory=collections.Counter)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    photos = small_photos()
    port = free_port()
    served = Origin(f"http://127.0.0.1:{port}")

    async def image(request: web.Request) -> web.Response:
        kind, name = request.match_info["kind"], request.match_info["name"]
        served.hits[request.path] += 1
        if served.delay:
            await asyncio.sleep(served.delay)
        if kind == "down" or (kind == "flaky" and served.hits[request.path] <= 2):
            return web.Response(status=503, text="busy")
        number = int(name) if name.isdigit() else 0
        # Decoders stop at the JPEG's end marker; the hash of the bytes sees the rest.
        body = photos[number % len(photos)] + request.path.encode()
        return web.Response(body=body, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{kind}/{name}.jpg", image)
    async with serving(app, port):
        yield served


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data


@dataclass
class Receiver:
    """`/ok` answers 200; `/flaky` answers 500 three times per webhook-id, then 200."""

    base_url: str
    calls: list[Call] = field(default_factory=list)

    def for_request(self, request_id: str) -> list[Call]:
        return [c for c in self.calls if c.payload.get("request_id") == request_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    got = Receiver(f"http://127.0.0.1:{port}")

    async def hook(request: web.Request) -> web.Response:
        call = Call(
            request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read()
        )
        got.calls.append(call)
        if request.path == "/flaky":
            tries = sum(
                1 for c in got.calls if c.headers["webhook-id"] == call.headers["webhook-id"]
            )
            if tries <= 3:
                return web.Response(status=500, text="not now")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{path}", hook)
    async with serving(app, port):
        yield got


@dataclass
class S3Backend:
    """The services' S3 endpoint is `proxy`, in front of the session's moto server."""

    proxy: FaultyS3
    bucket: str

    def env(self) -> dict[str, str]:
        return s3_env(self.proxy.url, self.bucket)

    async def stored_images(self, folder: str) -> set[str]:
        prefix = f"images/{folder}/"
        return {
            k.rsplit("/", 1)[1] for k in await keys_in(self.proxy.upstream, self.bucket, prefix)
        }


@dataclass
class System:
    ns: Namespace
    stack: Stack
    database: SecantusServer
    data_dir: Path
    ingest_url: str
    status_url: str
    rabbit: PrivateRabbit | None = None
    s3: S3Backend | None = None

    async def stored_images(self, folder: str) -> set[str]:
        """The names of the processed images under `images/<folder>/` in the file store (a
        request's own, or `shared`, the outputs requests may share)."""
        if self.s3 is not None:
            return await self.s3.stored_images(folder)
        return {p.name for p in (self.data_dir / "images" / folder).rglob("*.jpg")}

    def restart(self, name: str) -> None:
        self.stack.kill(name)
        self.stack.start_one(name)

    def kill_database(self) -> None:
        assert self.database.process is not None
        self.database.process.kill()
        self.database.process.wait()

    def start_database(self) -> None:
        self.database.start()


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    # Not under pytest's tmp dir: that is private to us, and the node runs as user rabbitmq.
    node = PrivateRabbit(Path(tempfile.mkdtemp(prefix="imgpipe-rabbit-")))
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def _system(
    rabbitmq_url: str,
    root: Path,
    rabbit: PrivateRabbit | None,
    s3: S3Backend | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[System]:
    database = SecantusServer(free_port(), str(root / "db"), root / "secantus.log")
    database.start()
    # Stopped whatever happens: a start or a namespace clean-up that fails must not leave it.
    try:
        async with new_namespace(rabbitmq_url, database.url) as ns:
            ports = {
                name: str(free_port()) for name in ("INGEST_PORT", "STATUS_PORT", "NOTIFIER_PORT")
            }
            env = (
                os.environ
                | ns.env()
                | ports
                | {
                    "DATA_DIR": str(root / "files"),
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['STATUS_PORT']}",
                    "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
                    "WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "WORKERS": "2",
                    "OUTBOX_GRACE": "2",
                    "OUTBOX_INTERVAL": "0.5",
                    "MONGODB_TIMEOUT_MS": "2000",
                    "REUSE_LEASE": "3",
                }
                | (s3.env() if s3 else {})
                | (extra_env or {})
            )
            stack = Stack(env, log_dir=root / "logs")
            try:
                stack.start()
                # Off the loop: the S3 proxy the services reach at start runs on it.
                await asyncio.to_thread(stack.wait_healthy)
                yield System(
                    ns,
                    stack,
                    database,
                    root / "files",
                    f"http://127.0.0.1:{ports['INGEST_PORT']}",
                    f"http://127.0.0.1:{ports['STATUS_PORT']}",
                    rabbit,
                    s3,
                )
            finally:
                stack.stop()
                for log in sorted((root / "logs").glob("*.log")):
                    print(f"----- {log.name} -----\n{log.read_text()[-4000:]}")
                # new_namespace drops the database; it must still be up for that.
                if database.process is None or database.process.poll() is not None:
                    database.start()
    finally:
        database.stop()


@pytest.fixture
async def system(rabbitmq_url: str, tmp_path: Path) -> AsyncIterator[System]:
    async for running in _system(rabbitmq_url, tmp_path, None):
        yield running


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver for the services' traces."""
    started = OtlpReceiver()
    started.start()
    yield started
    started.stop()


@pytest.fixture
async def traced_system(
    rabbitmq_url: str, otlp: OtlpReceiver, tmp_path: Path
) -> AsyncIterator[System]:
    """A system whose services export every trace to `otlp` (a fifth of a second apart)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    async for running in _system(rabbitmq_url, tmp_path, None, extra_env=env):
        yield running


@pytest.fixture
async def system_on_s3(
    rabbitmq_url: str, local_s3: LocalS3, tmp_path: Path
) -> AsyncIterator[System]:
    """A system on the s3 backend, reaching moto through a proxy that fails on demand."""
    proxy = FaultyS3(local_s3.url, free_port())
    await proxy.up()
    backend = S3Backend(proxy, await new_bucket(local_s3.url))
    try:
        extra_env = {"IMAGES_IN_PROGRESS": str(S3_IMAGES_IN_PROGRESS)}
        async for running in _system(rabbitmq_url, tmp_path, None, backend, extra_env):
            yield running
    finally:
        await proxy.close()


@pytest.fixture
async def system_on_private_rabbit(
    private_rabbit: PrivateRabbit, tmp_path: Path
) -> AsyncIterator[System]:
    async for running in _system(private_rabbit.url, tmp_path, private_rabbit):
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
