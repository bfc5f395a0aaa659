"""Looking into queues from a test: take messages, count them."""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


async def take(
    channel: aio_pika.abc.AbstractChannel, queue: str, count: int, within: float = 10
) -> list[AbstractIncomingMessage]:
    """Wait until `count` messages can be taken from `queue`; return them."""
    source = await channel.declare_queue(queue, passive=True)
    taken: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(taken) < count:
        message = await source.get(no_ack=True, fail=False)
        if message is not None:
            taken.append(message)
        elif asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{queue}: {len(taken)} of {count} messages within {within}s")
        else:
            await asyncio.sleep(0.05)
    return taken


async def depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0
