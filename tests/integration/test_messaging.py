"""The consumer boundary on a real RabbitMQ: retries through TTL queues, dead letters, confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
import pytest

from imgpipe_contracts.events import ImageRequested, RequestAccepted
from imgpipe_contracts.topology import PROCESSOR_IMAGE_REQUESTED
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.retry import ERROR_HEADER, Reject, Unavailable
from tests.integration.amqp import depth, take

SPEC = PROCESSOR_IMAGE_REQUESTED


def job(position: int = 0) -> ImageRequested:
    return ImageRequested(
        request_id="0" * 32,
        row_index=0,
        position=position,
        serial_number=1,
        product_name="SKU1",
        url="http://example.com/a.jpg",
    )


async def test_a_transient_failure_is_retried_with_the_attempt_counted(broker: Broker) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if not delivery.is_last_attempt:
            raise RuntimeError("origin hiccup")
        done.set()

    await broker.consume(SPEC, flaky, prefetch=4)
    await broker.publish(job())
    await asyncio.wait_for(done.wait(), 10)
    assert attempts == [1, 2, 3]


async def test_a_message_that_keeps_failing_ends_in_the_dlq_with_its_error(
    broker: Broker, channel: aio_pika.abc.AbstractChannel
) -> None:
    attempts: list[int] = []

    async def broken(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise RuntimeError("always broken")

    await broker.consume(SPEC, broken, prefetch=4)
    event = job()
    await broker.publish(event)
    [dead] = await take(channel, broker.topology.dlq(SPEC), 1)
    assert attempts == [1, 2, 3]
    assert dead.headers[ERROR_HEADER] == "always broken"
    assert ImageRequested.model_validate_json(dead.body) == event


async def test_a_rejected_message_goes_to_the_dlq_without_retries(
    broker: Broker, channel: aio_pika.abc.AbstractChannel
) -> None:
    attempts: list[int] = []

    async def refuses(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise Reject("cannot ever work")

    await broker.consume(SPEC, refuses, prefetch=4)
    await broker.publish(job())
    [dead] = await take(channel, broker.topology.dlq(SPEC), 1)
    assert attempts == [1]
    assert dead.headers[ERROR_HEADER] == "cannot ever work"


async def test_a_malformed_message_is_dead_lettered_and_the_consumer_keeps_working(
    broker: Broker, channel: aio_pika.abc.AbstractChannel
) -> None:
    handled: list[int] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        assert isinstance(delivery.event, ImageRequested)
        handled.append(delivery.event.position)
        done.set()

    await broker.consume(SPEC, handler, prefetch=4)
    queue = broker.topology.queue(SPEC)
    await channel.default_exchange.publish(
        aio_pika.Message(b"{not json", type="image.requested"), routing_key=queue
    )
    await channel.default_exchange.publish(
        aio_pika.Message(b'{"request_id": 7}', type="image.requested"), routing_key=queue
    )
    await broker.publish(job(position=5))
    await asyncio.wait_for(done.wait(), 10)
    dead = await take(channel, broker.topology.dlq(SPEC), 2)
    assert sorted(m.body for m in dead) == [b'{"request_id": 7}', b"{not json"]
    assert all(m.headers[ERROR_HEADER].startswith("malformed message") for m in dead)
    assert handled == [5]


async def test_an_unavailable_dependency_does_not_use_up_attempts(broker: Broker) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def database_down_for_a_while(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) <= 4:
            raise Unavailable("database down")
        done.set()

    await broker.consume(SPEC, database_down_for_a_while, prefetch=4)
    await broker.publish(job())
    await asyncio.wait_for(done.wait(), 15)
    assert attempts == [1, 1, 1, 1, 1]


async def test_batches_deliver_every_message_once(broker: Broker) -> None:
    seen: list[int] = []
    batches: list[int] = []
    all_seen = asyncio.Event()

    async def handler(deliveries: Sequence[Delivery]) -> None:
        batches.append(len(deliveries))
        seen.extend(d.event.position for d in deliveries if isinstance(d.event, ImageRequested))
        if len(seen) >= 30:
            all_seen.set()

    await broker.consume_batches(SPEC, handler, batch_size=8, max_wait=0.05)
    await broker.publish_many(job(position=i) for i in range(30))
    await asyncio.wait_for(all_seen.wait(), 10)
    assert sorted(seen) == list(range(30))
    assert max(batches) <= 8


async def test_an_announcement_without_subscribers_is_published(
    broker: Broker, channel: aio_pika.abc.AbstractChannel
) -> None:
    await broker.publish(
        RequestAccepted(request_id="0" * 32, rows=1, images=1, status_url="http://x/status/0")
    )
    assert await depth(channel, broker.topology.queue(SPEC)) == 0


async def test_work_with_no_queue_to_take_it_is_an_error_not_a_silent_drop(
    broker: Broker, channel: aio_pika.abc.AbstractChannel
) -> None:
    await channel.queue_delete(broker.topology.queue(SPEC))
    with pytest.raises(aio_pika.exceptions.PublishError):
        await broker.publish(job())
