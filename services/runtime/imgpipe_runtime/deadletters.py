"""Seeing and replaying what ended in a dead-letter queue (for operators, via `imgpipe dlq`)."""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractChannel

from imgpipe_contracts.topology import ALL_QUEUES, QueueSpec, Topology
from imgpipe_runtime.consumer import copy_message
from imgpipe_runtime.retry import ATTEMPT_HEADER, ERROR_HEADER

REPLAYED_HEADER = "x-imgpipe-replayed"


@dataclass(frozen=True)
class DeadLetter:
    routing_key: str
    error: str
    body: bytes


def spec_named(base: str) -> QueueSpec:
    """The work queue called `base` (e.g. `processor.image-requested`)."""
    for spec in ALL_QUEUES:
        if spec.base == base or f"{spec.base}.dlq" == base:
            return spec
    names = ", ".join(spec.base for spec in ALL_QUEUES)
    raise ValueError(f"no work queue named {base!r}; choose one of {names}")


async def dead_letter_counts(channel: AbstractChannel, topology: Topology) -> dict[str, int]:
    """Messages waiting in each dead-letter queue, by work queue."""
    counts = {}
    for spec in ALL_QUEUES:
        queue = await channel.declare_queue(topology.dlq(spec), passive=True)
        counts[spec.base] = queue.declaration_result.message_count or 0
    return counts


async def peek(
    channel: AbstractChannel, topology: Topology, spec: QueueSpec, limit: int
) -> list[DeadLetter]:
    """Up to `limit` dead letters, left in the queue."""
    queue = await channel.declare_queue(topology.dlq(spec), passive=True)
    taken = []
    for _ in range(limit):
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    letters = [
        DeadLetter(
            routing_key=m.type or m.routing_key or "",
            error=str((m.headers or {}).get(ERROR_HEADER, "")),
            body=m.body,
        )
        for m in taken
    ]
    for message in taken:
        await message.nack(requeue=True)
    return letters


async def replay(
    channel: AbstractChannel, topology: Topology, spec: QueueSpec, limit: int | None
) -> int:
    """Move dead letters back to their work queue with a fresh attempt count; return how many.

    `channel` must have publisher confirms on: each message is acked in the DLQ only after the
    work queue has it, so a crash midway duplicates at worst (consumers are idempotent).
    """
    queue = await channel.declare_queue(topology.dlq(spec), passive=True)
    moved = 0
    while limit is None or moved < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        replayed = (message.headers or {}).get(REPLAYED_HEADER)
        count = (replayed if isinstance(replayed, int) else 0) + 1
        await channel.default_exchange.publish(
            copy_message(message, {ATTEMPT_HEADER: 1, REPLAYED_HEADER: count}),
            routing_key=topology.queue(spec),
            mandatory=True,
            timeout=10,
        )
        await message.ack()
        moved += 1
    return moved
