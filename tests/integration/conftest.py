"""Integration tests get a namespace of their own, per test, so that no consumer of another
test (or of the e2e stack) ever takes their messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from imgpipe_runtime.broker import Broker
from tests.conftest import Namespace, new_namespace


@pytest.fixture
async def ns(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as namespace:
        yield namespace


@pytest.fixture
async def broker(ns: Namespace) -> AsyncIterator[Broker]:
    """A started Broker in the test's namespace (the topology is declared)."""
    started = Broker(ns.broker_settings(), "imgpipe-tests")
    await started.start()
    yield started
    await started.close()


@pytest.fixture
async def channel(ns: Namespace) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain channel for looking into the namespace's queues."""
    connection = await aio_pika.connect(ns.rabbitmq_url)
    async with connection:
        yield await connection.channel()


@pytest.fixture
async def mongo(ns: Namespace) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(ns.mongodb_url, tz_aware=True)
    yield client
    await client.close()
