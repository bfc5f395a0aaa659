"""`imgpipe dlq`: what could not be processed, and sending it back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import aio_pika
import typer
from rich.console import Console
from rich.table import Table

from imgpipe_runtime.deadletters import dead_letter_counts, peek, replay, spec_named
from imgpipe_runtime.settings import BrokerSettings, load_settings

T = TypeVar("T")

dlq = typer.Typer(help="Dead-letter queues: what could not be processed.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def _run(work: Callable[[aio_pika.abc.AbstractChannel, BrokerSettings], Awaitable[T]]) -> T:
    """Connect with the environment's settings (RABBITMQ_URL, BROKER_PREFIX), run, close."""
    settings = load_settings(BrokerSettings)

    async def main() -> T:
        connection = await aio_pika.connect(settings.rabbitmq_url, timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            return await work(channel, settings)

    try:
        return asyncio.run(main())
    except ValueError as exc:
        err.print(f"imgpipe: {exc}", highlight=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        err.print(f"imgpipe: {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None


@dlq.command("list")
def dlq_list(
    show: Annotated[int, typer.Option(help="Also show up to N messages of each queue.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """How many messages wait in each dead-letter queue (and why, with --show)."""

    async def work(
        channel: aio_pika.abc.AbstractChannel, settings: BrokerSettings
    ) -> list[tuple[str, int, list[str]]]:
        topology = settings.topology()
        rows = []
        for base, count in (await dead_letter_counts(channel, topology)).items():
            letters = await peek(channel, topology, spec_named(base), show) if show else []
            rows.append((base, count, [f"{d.routing_key}: {d.error}" for d in letters]))
        return rows

    rows = _run(work)
    if as_json:
        print(json.dumps([{"queue": b, "dead_letters": c, "examples": e} for b, c, e in rows]))
        return
    table = Table("work queue", "dead letters", "examples")
    for base, count, examples in rows:
        table.add_row(base, str(count), "\n".join(examples))
    out.print(table)


@dlq.command("replay")
def dlq_replay(
    queue: Annotated[str, typer.Argument(help="Work queue, e.g. processor.image-requested.")],
    limit: Annotated[int | None, typer.Option(help="Replay at most this many.")] = None,
) -> None:
    """Move dead letters back to their work queue for another try."""

    async def work(channel: aio_pika.abc.AbstractChannel, settings: BrokerSettings) -> int:
        return await replay(channel, settings.topology(), spec_named(queue), limit)

    moved = _run(work)
    out.print(f"replayed {moved} message{'s' if moved != 1 else ''} to {queue}")
