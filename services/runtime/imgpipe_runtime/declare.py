"""Declaring the topology that imgpipe_contracts.topology describes, on a live channel."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from imgpipe_contracts.topology import Topology, queue_declarations


async def declare_topology(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """Declare the exchange and every queue (dead-letter queues first); return the exchange."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    for declaration in queue_declarations(topology):
        queue = await channel.declare_queue(
            declaration.name, durable=True, arguments=declaration.arguments
        )
        for key in declaration.routing_keys:
            await queue.bind(exchange, routing_key=key)
    return exchange


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything `declare_topology` made (tests use this to leave no trace)."""
    for declaration in queue_declarations(topology):
        await channel.queue_delete(declaration.name)
    await channel.exchange_delete(topology.exchange)
