"""One process's link to RabbitMQ: confirmed publishing and consumers that survive reconnects.

We reconnect ourselves instead of using aio-pika's RobustConnection: after an abrupt broker
restart its channel restoration has been seen here (and is reported upstream, e.g.
mosquito/aio-pika#231) to reconnect without restoring consumers, leaving a worker idle forever.
Here a lost connection makes the supervisor open a new one, declare the topology and start
every consumer again on fresh channels; publishes retry until that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import AMQPError, PublishError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from imgpipe_contracts.events import Event
from imgpipe_contracts.topology import ROUTED_KEYS, QueueSpec, Topology
from imgpipe_runtime.consumer import BatchHandler, Consumer, Handler, destination
from imgpipe_runtime.declare import declare_topology
from imgpipe_runtime.retry import ATTEMPT_HEADER
from imgpipe_runtime.settings import BrokerSettings
from imgpipe_runtime.tracing import headers as trace_headers

log = logging.getLogger(__name__)

_RETRYABLE_PUBLISH_ERRORS = (AMQPError, asyncio.TimeoutError, ConnectionError, RuntimeError)


class Publisher(Protocol):
    """What a handler needs of the broker: confirmed publishing of events."""

    async def publish(self, event: Event) -> None: ...


class Broker:
    """A confirming publisher channel plus consumers, re-established after any disconnect."""

    def __init__(self, settings: BrokerSettings, name: str) -> None:
        self.settings = settings
        self.topology: Topology = settings.topology()
        self._name = name
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._channel: AbstractChannel | None = None
        self._default_exchange: AbstractExchange | None = None
        self._consumers: list[Consumer] = []
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self, wait_seconds: float = 60.0) -> None:
        """Connect (waiting up to `wait_seconds` for the broker) and declare the topology."""
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(wait_seconds), wait=wait_exponential(max=5), reraise=True
        ):
            with attempt:
                await self._connect()
        self._supervisor = asyncio.create_task(self._reconnect_forever())

    async def _connect(self) -> None:
        connection = await aio_pika.connect(
            self.settings.rabbitmq_url,
            timeout=10,
            client_properties={"connection_name": self._name},
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await declare_topology(channel, self.topology)
            for consumer in self._consumers:
                await consumer.start(await connection.channel())
        except BaseException:
            await connection.close()
            raise
        self._lost.clear()
        connection.close_callbacks.add(lambda *_: self._lost.set())
        self._connection = connection
        self._exchange = exchange
        self._channel = channel
        self._default_exchange = channel.default_exchange

    async def _reconnect_forever(self) -> None:
        while True:
            await self._lost.wait()
            log.warning("lost the connection to RabbitMQ; reconnecting")
            delay = 0.5
            while True:
                try:
                    await self._connect()
                except Exception as exc:
                    log.warning("reconnecting to RabbitMQ failed (%r); again in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    log.info("reconnected to RabbitMQ; consumers restarted")
                    break

    @property
    def is_connected(self) -> bool:
        # aio-pika's `is_closed` turns true only once we close a connection ourselves; one
        # that the broker closed or that broke is known by its close callback (`_lost`), and
        # stays lost until a new connection is made.
        return (
            self._connection is not None
            and not self._connection.is_closed
            and not self._lost.is_set()
        )

    async def publish(self, event: Event) -> None:
        """Publish one event and wait for the broker's confirm (retrying across reconnects)."""
        await self._publish(False, event.routing_key, _message(event))

    async def least_busy(self, specs: Sequence[QueueSpec]) -> QueueSpec:
        """The queue with the fewest ready messages (the first on a tie, or if the broker
        cannot say: a lane is a matter of fairness, not of correctness)."""
        channel = self._channel
        if channel is None or len(specs) == 1:
            return specs[0]
        depths = []
        try:
            for spec in specs:
                queue = await channel.declare_queue(self.topology.queue(spec), passive=True)
                depths.append(queue.declaration_result.message_count or 0)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            log.warning("could not read queue depths (%r); using the first lane", exc)
            return specs[0]
        return specs[depths.index(min(depths))]

    async def publish_many(
        self, events: Iterable[Event], window: int = 500, routing_key: str | None = None
    ) -> None:
        """Publish events (with `routing_key` instead of their own, if given), with up to
        `window` confirms outstanding at a time.

        A failure retries the whole window (consumers are idempotent, so a duplicate is
        harmless); retrying per message would cost more than the publish itself.
        """
        batch: list[tuple[str, aio_pika.Message]] = []
        for event in events:
            batch.append((routing_key or event.routing_key, _message(event)))
            if len(batch) >= window:
                await self._publish_window(batch)
                batch = []
        if batch:
            await self._publish_window(batch)

    async def _publish_window(self, batch: list[tuple[str, aio_pika.Message]]) -> None:
        async for attempt in self._retrying():
            with attempt:
                exchange = self._exchange
                if exchange is None:
                    raise RuntimeError("not connected to RabbitMQ yet")
                await asyncio.gather(
                    *(
                        exchange.publish(
                            message,
                            routing_key=key,
                            mandatory=key in ROUTED_KEYS,
                            timeout=self.settings.publish_timeout,
                        )
                        for key, message in batch
                    )
                )

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(_RETRYABLE_PUBLISH_ERRORS)
            & retry_if_not_exception_type(PublishError),
            stop=stop_after_delay(self.settings.publish_timeout * 3),
            wait=wait_exponential(multiplier=0.2, max=5),
            reraise=True,
        )

    async def send_to_queue(self, queue: str, message: aio_pika.Message) -> None:
        """Publish straight to a queue (retry queues, dead letters), with a confirm."""
        await self._publish(True, queue, message)

    async def _publish(self, direct: bool, routing_key: str, message: aio_pika.Message) -> None:
        # Work that some service must do is published `mandatory`, so a missing queue is an
        # error instead of a silent drop; pure announcements may have no subscriber at all.
        mandatory = direct or routing_key in ROUTED_KEYS
        async for attempt in self._retrying():
            with attempt:
                # Looked up on every attempt: a reconnect replaces the channel.
                exchange = self._default_exchange if direct else self._exchange
                if exchange is None:
                    raise RuntimeError("not connected to RabbitMQ yet")
                await exchange.publish(
                    message,
                    routing_key=routing_key,
                    mandatory=mandatory,
                    timeout=self.settings.publish_timeout,
                )

    async def defer(self, spec: QueueSpec, event: Event, exc: Exception, attempt: int) -> None:
        """Send one job of a batch from `spec` that failed its `attempt`-th try with `exc` where
        a failed message of its own would go (a retry queue or the DLQ); raises unless the
        broker confirmed it, so the batch stays unacked."""
        move = destination(self.topology, spec, exc, attempt)
        message = _message(event)
        message.headers = (message.headers or {}) | move.headers(exc)
        await self.send_to_queue(move.queue, message)
        move.count()

    async def consume(self, spec: QueueSpec, handler: Handler, prefetch: int) -> None:
        """Run `handler` on each message of `spec`'s queue, up to `prefetch` at a time."""
        await self._add_consumer(
            Consumer(
                self.topology,
                self.send_to_queue,
                spec,
                prefetch,
                lambda batch: handler(batch[0]),
                1,
                0.0,
            )
        )

    async def consume_batches(
        self, spec: QueueSpec, handler: BatchHandler, batch_size: int, max_wait: float
    ) -> None:
        """Hand messages to `handler` in batches of up to `batch_size`, waiting `max_wait` s."""
        await self._add_consumer(
            Consumer(
                self.topology,
                self.send_to_queue,
                spec,
                batch_size * 2,
                handler,
                batch_size,
                max_wait,
            )
        )

    async def _add_consumer(self, consumer: Consumer) -> None:
        assert self._connection is not None, "call start() first"
        self._consumers.append(consumer)
        channel: AbstractChannel = await self._connection.channel()
        await consumer.start(channel)

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
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
        # The trace context rides along when tracing is on (an empty dict when off).
        headers={ATTEMPT_HEADER: 1, **trace_headers()},
    )


@contextlib.asynccontextmanager
async def running_broker(settings: BrokerSettings, name: str) -> AsyncIterator[Broker]:
    """A started broker link (topology declared), closed on the way out."""
    broker = Broker(settings, name)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.close()
