"""AMQP plumbing shared by the services: one robust connection, confirmed publishing, consumers.

The consumer boundary alone decides what happens to a message: ack after the handler returned,
a delayed retry through a retry queue, or the dead-letter queue. Handlers only raise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, PublishError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from imgpipe_contracts.events import Event, parse_event
from imgpipe_contracts.settings import BrokerSettings
from imgpipe_contracts.topology import ROUTED_KEYS, QueueSpec, Topology, declare_topology

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-imgpipe-attempt"
ERROR_HEADER = "x-imgpipe-error"
_RETRYABLE_PUBLISH_ERRORS = (AMQPError, asyncio.TimeoutError, ConnectionError, RuntimeError)


class Reject(Exception):
    """The message can never succeed: dead-letter it now."""


class Unavailable(Exception):
    """A dependency is down: try again later without using up an attempt."""


@dataclass(frozen=True)
class Delivery:
    """An event as a handler sees it, with how many times it has been tried."""

    event: Event
    attempt: int
    max_attempts: int

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[Delivery], Awaitable[None]]
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


class Broker:
    """One process's link to RabbitMQ: a publisher channel with confirms, and its consumers."""

    def __init__(self, settings: BrokerSettings, name: str) -> None:
        self.settings = settings
        self.topology: Topology = settings.topology()
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        # aio-pika restores only channels the application still references (a weak set).
        self._channels: list[AbstractRobustChannel] = []
        self._exchange: AbstractExchange | None = None
        self._default_exchange: AbstractExchange | None = None
        self._consumers: list[_Consumer] = []

    async def start(self, wait_seconds: float = 60.0) -> None:
        """Connect (waiting up to `wait_seconds` for the broker) and declare the topology."""
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(wait_seconds), wait=wait_exponential(max=5), reraise=True
        ):
            with attempt:
                self._connection = await aio_pika.connect_robust(
                    self.settings.rabbitmq_url,
                    timeout=10,
                    client_properties={"connection_name": self._name},
                )
        channel = await self._open_channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare_topology(channel, self.topology)
        self._default_exchange = channel.default_exchange

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def _open_channel(self, **kwargs: bool) -> AbstractRobustChannel:
        assert self._connection is not None, "call start() first"
        channel = await self._connection.channel(**kwargs)
        assert isinstance(channel, AbstractRobustChannel)
        self._channels.append(channel)
        return channel

    async def publish(self, event: Event) -> None:
        """Publish one event and wait for the broker's confirm (retrying across reconnects)."""
        await self._publish(self._exchange, event.routing_key, _message(event))

    async def publish_many(self, events: Iterable[Event], window: int = 500) -> None:
        """Publish events with up to `window` confirms outstanding at a time."""
        pending: list[Awaitable[None]] = []
        for event in events:
            pending.append(self._publish(self._exchange, event.routing_key, _message(event)))
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending = []
        if pending:
            await asyncio.gather(*pending)

    async def send_to_queue(self, queue: str, message: aio_pika.Message) -> None:
        await self._publish(self._default_exchange, queue, message)

    async def _publish(
        self, exchange: AbstractExchange | None, routing_key: str, message: aio_pika.Message
    ) -> None:
        assert exchange is not None, "call start() first"
        # Work that some service must do is published `mandatory`, so a missing queue is an
        # error instead of a silent drop; pure announcements may have no subscriber at all.
        mandatory = exchange is self._default_exchange or routing_key in ROUTED_KEYS
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_RETRYABLE_PUBLISH_ERRORS)
            & retry_if_not_exception_type(PublishError),
            stop=stop_after_delay(self.settings.publish_timeout * 3),
            wait=wait_exponential(multiplier=0.2, max=5),
            reraise=True,
        ):
            with attempt:
                await exchange.publish(
                    message,
                    routing_key=routing_key,
                    mandatory=mandatory,
                    timeout=self.settings.publish_timeout,
                )

    async def consume(self, spec: QueueSpec, handler: Handler, prefetch: int) -> None:
        """Run `handler` on each message of `spec`'s queue, up to `prefetch` at a time."""
        consumer = _Consumer(self, spec, prefetch, lambda batch: handler(batch[0]), 1, 0.0)
        await consumer.start(await self._open_channel())
        self._consumers.append(consumer)

    async def consume_batches(
        self, spec: QueueSpec, handler: BatchHandler, batch_size: int, max_wait: float
    ) -> None:
        """Hand messages to `handler` in batches of up to `batch_size`, waiting `max_wait` s."""
        consumer = _Consumer(self, spec, batch_size * 2, handler, batch_size, max_wait)
        await consumer.start(await self._open_channel())
        self._consumers.append(consumer)

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        if self._connection is not None:
            await self._connection.close()


def _message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        event.to_json(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.event_id,
        type=event.routing_key,
        headers={ATTEMPT_HEADER: 1},
    )


class _Consumer:
    """Feeds deliveries to a handler one by one (batch_size 1, concurrent) or in batches."""

    def __init__(
        self,
        broker: Broker,
        spec: QueueSpec,
        prefetch: int,
        handler: BatchHandler,
        batch_size: int,
        max_wait: float,
    ) -> None:
        self._broker = broker
        self._spec = spec
        self._prefetch = prefetch
        self._handler = handler
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._buffer: asyncio.Queue[tuple[AbstractIncomingMessage, Delivery]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel: Callable[[], Awaitable[object]] | None = None

    async def start(self, channel: AbstractRobustChannel) -> None:
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self._broker.topology.queue(self._spec))
        if self._batch_size > 1:
            self._spawn(self._flush_forever())
        tag = await queue.consume(self._on_message)
        self._cancel = lambda: queue.cancel(tag)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._cancel is not None:
            await self._cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        topology = self._broker.topology
        raw_attempt = (message.headers or {}).get(ATTEMPT_HEADER)
        attempt = raw_attempt if isinstance(raw_attempt, int) and raw_attempt > 0 else 1
        try:
            event = parse_event(message.type or message.routing_key or "", message.body)
        except ValueError as exc:
            log.error("dead-lettering a malformed message from %s: %s", self._spec.base, exc)
            await self._settle(message, Reject(f"malformed message: {exc}"), attempt)
            return
        delivery = Delivery(event, attempt, topology.max_attempts(self._spec))
        if self._batch_size > 1:
            await self._buffer.put((message, delivery))
        else:
            await self._run([(message, delivery)])

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._buffer.get()]
            deadline = loop.time() + self._max_wait
            while len(batch) < self._batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._buffer.get(), remaining))
                except TimeoutError:
                    break
            await self._run(batch)

    async def _run(self, batch: list[tuple[AbstractIncomingMessage, Delivery]]) -> None:
        try:
            await self._handler([delivery for _, delivery in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for message, delivery in batch:
                await self._settle(message, exc, delivery.attempt)
            return
        for message, _ in batch:
            await message.ack()

    async def _settle(self, message: AbstractIncomingMessage, exc: Exception, attempt: int) -> None:
        """Move a failed message to a retry queue or the DLQ, then ack the original."""
        topology = self._broker.topology
        delays = topology.retry_delays(self._spec)
        if isinstance(exc, Unavailable):
            target, next_attempt = topology.retry_queue(self._spec, delays[0]), attempt
            log.warning("%s unavailable, retrying later: %s", self._spec.base, exc)
        elif isinstance(exc, Reject) or attempt >= len(delays) + 1:
            target, next_attempt = topology.dlq(self._spec), attempt
            log.error("dead-lettering message from %s: %r", self._spec.base, exc)
        else:
            target, next_attempt = (
                topology.retry_queue(self._spec, delays[attempt - 1]),
                attempt + 1,
            )
            log.warning("retrying message from %s (attempt %d): %r", self._spec.base, attempt, exc)
        headers = dict(message.headers or {})
        headers |= {ATTEMPT_HEADER: next_attempt, ERROR_HEADER: str(exc)[:500]}
        copy = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type or message.routing_key,
            headers=headers,
        )
        try:
            await self._broker.send_to_queue(target, copy)
        except Exception:
            # Not acked: the broker redelivers it once the connection is back.
            log.exception("could not move a message to %s; leaving it unacked", target)
            return
        await message.ack()
