"""Run 2t: run 2 again with every service tracing at a 10 % ratio, exporting over OTLP/HTTP
to a receiver in the bench process (`imgpipe_dev.otlp`), so its cost can be set against the
untraced run 2. `BENCH_ONLY=tracing` runs 2, 2t and 2 again (2a) alone.

Each of these runs gets a database of its own (the services restarted with a fresh
`MONGODB_DB`, the previous one dropped): SecantusDB's CPU per image was seen to grow from run
to run as its data grew (10 ms in a first run, 13 and then 32 ms in later ones), a drift that
would otherwise pass for, or hide, tracing's cost."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from bench import corpus, pipeline
from bench.config import Config
from bench.origin import Origin
from bench.steps import attempt, say
from bench.system import System, running_system
from imgpipe_dev.otlp import OtlpReceiver
from imgpipe_dev.stack import MODULES

RATIO = 0.1


def tracing_env(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(RATIO),
    }


@contextlib.asynccontextmanager
async def traced(
    system: System, database: str, then: dict[str, str]
) -> AsyncIterator[OtlpReceiver]:
    """Every service restarted with tracing on and `database`, against a receiver that counts
    the spans; restarted untraced with `then` over the system's environment on the way out."""
    receiver = OtlpReceiver(keep=False)
    receiver.start()
    try:
        await restart(system, tracing_env(receiver.url) | {"MONGODB_DB": database})
        yield receiver
    finally:
        await restart(system, then)
        receiver.stop()


async def restart(system: System, env: dict[str, str]) -> None:
    """Every service stopped and started again with `env` over the system's environment."""
    for name in MODULES:
        await asyncio.to_thread(system.stack.kill, name, signal.SIGTERM)
        system.stack.start_one(name, env=env)
    await asyncio.to_thread(system.stack.wait_healthy)


async def drop_database(system: System, name: str) -> None:
    async with AsyncMongoClient[dict[str, Any]](system.database.url) as client:
        await client.drop_database(name)


async def measured(
    config: Config,
    session: aiohttp.ClientSession,
    system: System,
    urls: tuple[list[str], list[str]],
    results: dict[str, Any],
    key: str,
) -> dict[str, Any] | None:
    """A warm-up batch nobody measures (services that have just started; the reuse records
    of these photos, as in run 2), then the measured batch."""
    warm, timed = urls
    say(f"   warming up: {len(warm)} images")
    await pipeline.batch(session, system, warm, 1, 0.25)
    clear_images(system)
    return await attempt(
        results,
        key,
        pipeline.batch(session, system, timed, config.pollers, config.poll_interval),
    )


def clear_images(system: System) -> None:
    shutil.rmtree(system.data_dir / "images", ignore_errors=True)


def batches(
    config: Config, origin: Origin, items: list[corpus.Item], tag: str
) -> tuple[list[str], list[str]]:
    """The warm-up's URLs (the corpus once) and the run's, all distinct."""
    return _urls(origin, items, len(items), f"warm-{tag}"), _urls(origin, items, config.images, tag)


async def run_2t(
    config: Config,
    session: aiohttp.ClientSession,
    system: System,
    origin: Origin,
    items: list[corpus.Item],
    results: dict[str, Any],
    then: dict[str, str] | None = None,
    drop: str | None = None,
) -> dict[str, Any] | None:
    """Restart traced on a fresh database (dropping `drop`, now unused), warm up, then run 2
    with URLs of its own; restart untraced with `then` after."""
    say(f"2t. pipeline traced at {RATIO:.0%} (OTLP to a local receiver): {config.images} images")
    database = f"{system.env['MONGODB_DB']}_2t"
    run = None
    try:
        async with traced(system, database, then or {}) as receiver:
            if drop is not None:
                await drop_database(system, drop)
            urls = batches(config, origin, items, "run2t")
            run = await measured(config, session, system, urls, results, "pipeline_traced")
            if run is not None:
                # The rest is flushed when the services stop, a moment after this.
                run["spans_received_before_stop"] = receiver.count
    finally:
        await drop_database(system, database)
    return run


async def only_tracing_runs(
    config: Config, items: list[corpus.Item], results: dict[str, Any], log_dir: Path
) -> None:
    """Runs 2, 2t and 2a (2 again, untraced, after 2t), each on a fresh database after a
    warm-up nobody measures: the two untraced runs bracket the traced one, so what remains
    of the machine's drift shows as their difference."""
    origin = Origin(items[0].path.parent, log_dir / "origin.log")
    origin.start()
    try:
        async with (
            running_system(config.rabbitmq_url, log_dir) as system,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
        ):
            say(f"system up (broker prefix {system.env['BROKER_PREFIX']})")
            system.watch["origin"] = [origin.process.pid] if origin.process else []
            say(f"2. pipeline: {config.images} images, {config.pollers} status pollers")
            urls = batches(config, origin, items, "run2")
            await measured(config, session, system, urls, results, "pipeline")
            clear_images(system)
            base = system.env["MONGODB_DB"]
            then = {"MONGODB_DB": f"{base}_2a"}
            await run_2t(config, session, system, origin, items, results, then, drop=base)
            clear_images(system)
            say(f"2a. pipeline again, untraced: {config.images} images")
            urls = batches(config, origin, items, "run2a")
            await measured(config, session, system, urls, results, "pipeline_again")
            say("stopping the system, deleting its queues, database and files")
    finally:
        origin.stop()


def _urls(origin: Origin, items: list[corpus.Item], count: int, tag: str) -> list[str]:
    return [origin.url(items[n % len(items)].name, f"{tag}-{n}") for n in range(count)]
