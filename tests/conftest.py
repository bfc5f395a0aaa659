"""Fixtures for the real broker and database. Each test session gets its own name prefix on
RabbitMQ and its own database, and removes both afterwards, so runs never see each other (or a
`make run` on the same machine)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from imgpipe_dev.infra import SecantusServer, free_port, mongodb_answers, port_open
from imgpipe_dev.s3local import LocalS3
from imgpipe_runtime.declare import delete_topology
from imgpipe_runtime.settings import BrokerSettings

REPO = Path(__file__).resolve().parent.parent
SAMPLE_IMAGES = REPO / "demo" / "images"


@dataclass(frozen=True)
class Namespace:
    """Names one test session uses on the shared servers."""

    rabbitmq_url: str
    mongodb_url: str
    prefix: str
    database: str

    # Short retry schedules so that tests of retries finish in seconds.
    retry_delays: str = "0.2,0.5"
    webhook_retry_delays: str = "0.3,0.6,1"

    def env(self) -> dict[str, str]:
        """Environment variables that point a service at this namespace."""
        return {
            "RABBITMQ_URL": self.rabbitmq_url,
            "BROKER_PREFIX": self.prefix,
            "RETRY_DELAYS": self.retry_delays,
            "WEBHOOK_RETRY_DELAYS": self.webhook_retry_delays,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DB": self.database,
        }

    def broker_settings(self) -> BrokerSettings:
        return BrokerSettings(**{k.lower(): v for k, v in self.env().items()})


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    parts = urlsplit(url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 5672):
        pytest.fail(f"RabbitMQ does not answer at {url}; run `make broker` (make test does)")
    return url


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    url = os.environ.get("MONGODB_URL")
    if url and mongodb_answers(url):
        yield url
        return
    server = SecantusServer(free_port(), ":memory:")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """moto's S3 server as a process of its own, on a free port, for the whole session; each
    test or stack makes its own bucket on it (tests.s3.new_bucket)."""
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    server = LocalS3(free_port(), "", log_path=log)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, port: int, host: str = "127.0.0.1", *, handler_cancellation: bool = False
) -> AsyncIterator[None]:
    """Run a test's own HTTP server (an image origin, a webhook receiver) while in the block;
    with `handler_cancellation`, a request whose client went away stops being handled."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def new_namespace(
    rabbitmq_url: str, mongodb_url: str, *, retry_delays: str = Namespace.retry_delays
) -> AsyncIterator[Namespace]:
    """A fresh prefix and database; everything made under them is removed on exit.
    (Retry schedules belong to the namespace: their queues are named after their delays, so
    only the namespace's own are found and removed.)"""
    token = uuid.uuid4().hex[:10]
    ns = Namespace(
        rabbitmq_url, mongodb_url, f"test-{token}.", f"imgpipe_test_{token}", retry_delays
    )
    try:
        yield ns
    finally:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await delete_topology(channel, ns.broker_settings().topology())
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
        await client.drop_database(ns.database)
        await client.close()


@pytest.fixture(scope="session")
async def namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    """The namespace of the session's running stack (e2e)."""
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns
