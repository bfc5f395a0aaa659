"""The consumer boundary: the one place that acks, retries or dead-letters a message.

Ack after the handler returned; on failure, carry out what `retry.settle` decides: a delayed
retry through a retry queue, or the dead-letter queue. Handlers only raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from imgpipe_contracts.events import Event, parse_event
from imgpipe_contracts.topology import QueueSpec, Topology
from imgpipe_runtime import metrics, tracing
from imgpipe_runtime.logs import EVENT_ID, REQUEST_ID
from imgpipe_runtime.retry import ATTEMPT_HEADER, ERROR_HEADER, Reject, ToDeadLetterQueue, settle

log = logging.getLogger(__name__)


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


SendToQueue = Callable[[str, aio_pika.Message], Awaitable[None]]
# A message, the delivery made of it, and its trace context (None when tracing is off).
Received = tuple[AbstractIncomingMessage, Delivery, object | None]


class Consumer:
    """Feeds deliveries to a handler one by one (batch_size 1, concurrent) or in batches."""

    def __init__(
        self,
        topology: Topology,
        send_to_queue: SendToQueue,
        spec: QueueSpec,
        prefetch: int,
        handler: BatchHandler,
        batch_size: int,
        max_wait: float,
    ) -> None:
        self._topology = topology
        self._send_to_queue = send_to_queue
        self._spec = spec
        self._prefetch = prefetch
        self._handler = handler
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._buffer: asyncio.Queue[Received] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel: Callable[[], Awaitable[object]] | None = None

    async def start(self, channel: AbstractChannel) -> None:
        """Consume on `channel`; called again with a new channel after a reconnect."""
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self._topology.queue(self._spec))
        if self._batch_size > 1 and not self._tasks:
            self._spawn(self._flush_forever())
        tag = await queue.consume(self._on_message)
        self._cancel = lambda: queue.cancel(tag)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._cancel is not None:
            with contextlib.suppress(Exception):  # the channel may be gone already
                await self._cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        topology = self._topology
        metrics.MESSAGES_CONSUMED.labels(self._spec.base).inc()
        if message.redelivered:
            metrics.MESSAGES_REDELIVERED.labels(self._spec.base).inc()
        raw_attempt = (message.headers or {}).get(ATTEMPT_HEADER)
        attempt = raw_attempt if isinstance(raw_attempt, int) and raw_attempt > 0 else 1
        try:
            event = parse_event(message.type or message.routing_key or "", message.body)
        except ValueError as exc:
            log.error("dead-lettering a malformed message from %s: %s", self._spec.base, exc)
            await self._settle(message, Reject(f"malformed message: {exc}"), attempt)
            return
        delivery = Delivery(event, attempt, topology.max_attempts(self._spec))
        # Each delivery runs in its own task, so these stay with this message's log lines.
        REQUEST_ID.set(event.request_id)
        EVENT_ID.set(event.event_id)
        # The message's trace context (extracted by the aio-pika instrumentation around this
        # callback), for the handler, which runs later in another task for a batch.
        received = (message, delivery, tracing.capture())
        if self._batch_size > 1:
            await self._buffer.put(received)
        else:
            await self._run([received])

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

    async def _run(self, batch: list[Received]) -> None:
        try:
            with tracing.handling([trace for _, _, trace in batch], self._spec.base):
                await self._handler([delivery for _, delivery, _ in batch])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.HANDLER_ERRORS.labels(self._spec.base).inc()
            for message, delivery, _ in batch:
                await self._settle(message, exc, delivery.attempt)
            return
        for message, _, _ in batch:
            await _ack(message)

    async def _settle(self, message: AbstractIncomingMessage, exc: Exception, attempt: int) -> None:
        """Move a failed message to a retry queue or the DLQ, then ack the original."""
        move = destination(self._topology, self._spec, exc, attempt)
        copy = copy_message(message, move.headers(exc))
        try:
            await self._send_to_queue(move.queue, copy)
        except Exception:
            # Not acked: the broker redelivers it once the connection is back.
            log.exception("could not move a message to %s; leaving it unacked", move.queue)
            return
        # Counted once the copy is confirmed: a message left unacked here is redelivered and
        # settled again, and counting it twice would overstate the moves.
        move.count()
        await _ack(message)


@dataclass(frozen=True)
class Move:
    """Where a failed message goes: a retry queue or the dead-letter queue."""

    spec: QueueSpec
    queue: str
    next_attempt: int
    dead_letter: bool

    def headers(self, exc: Exception) -> dict[str, Any]:
        """What the moved copy carries: its next attempt and why this one failed."""
        return {ATTEMPT_HEADER: self.next_attempt, ERROR_HEADER: str(exc)[:500]}

    def count(self) -> None:
        moved = metrics.MESSAGES_DEAD_LETTERED if self.dead_letter else metrics.MESSAGES_RETRIED
        moved.labels(self.spec.base).inc()


def destination(topology: Topology, spec: QueueSpec, exc: Exception, attempt: int) -> Move:
    """Carry `retry.settle`'s decision over to this deployment's queue names, and log it."""
    decision = settle(exc, attempt, topology.retry_delays(spec))
    if isinstance(decision, ToDeadLetterQueue):
        log.error("dead-lettering message from %s: %r", spec.base, exc)
        return Move(spec, topology.dlq(spec), attempt, dead_letter=True)
    log.warning("retrying message from %s (attempt %d): %r", spec.base, attempt, exc)
    return Move(
        spec, topology.retry_queue(spec, decision.delay), decision.next_attempt, dead_letter=False
    )


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy to publish elsewhere; the event type travels in `type`, because
    dead-lettering through a retry queue replaces the routing key with the queue's name."""
    return aio_pika.Message(
        message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type or message.routing_key,
        headers=dict(message.headers or {}) | headers,
    )


async def _ack(message: AbstractIncomingMessage) -> None:
    """Ack, unless the channel it came on has died: then the broker redelivers it."""
    try:
        await message.ack()
    except Exception as exc:
        log.warning("could not ack (it will be redelivered): %r", exc)
