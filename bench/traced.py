"""Run 2t: run 2 again with every service tracing at a 10 % ratio, exporting over OTLP/HTTP
to a receiver in the bench process (`imgpipe_dev.otlp`), so its cost can be set against the
untraced run 2. `BENCH_ONLY=tracing` runs 2, 2t and 2 again (2a) alone."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

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
async def traced(system: System) -> AsyncIterator[OtlpReceiver]:
    """Every service restarted with tracing on, against a receiver that counts the spans;
    restarted without it on the way out."""
    receiver = OtlpReceiver(keep=False)
    receiver.start()
    try:
        await _restart(system, tracing_env(receiver.url))
        yield receiver
    finally:
        await _restart(system, {})
        receiver.stop()


async def _restart(system: System, env: dict[str, str]) -> None:
    for name in MODULES:
        await asyncio.to_thread(system.stack.kill, name, signal.SIGTERM)
        system.stack.start_one(name, env=env)
    await asyncio.to_thread(system.stack.wait_healthy)


async def warm_up(session: aiohttp.ClientSession, system: System, urls: list[str]) -> None:
    """A batch nobody measures: services that have just started (imports, pools, the first
    connections) and a database whose records of these photos already exist, as in run 2."""
    say(f"   warming up: {len(urls)} images")
    await pipeline.batch(session, system, urls, 1, 0.25)
    clear_images(system)


def clear_images(system: System) -> None:
    shutil.rmtree(system.data_dir / "images", ignore_errors=True)


async def run_2t(
    config: Config,
    session: aiohttp.ClientSession,
    system: System,
    origin: Origin,
    items: list[corpus.Item],
    results: dict[str, Any],
) -> dict[str, Any] | None:
    """Restart traced, warm up, then run 2 with URLs of its own."""
    say(f"2t. pipeline traced at {RATIO:.0%} (OTLP to a local receiver): {config.images} images")
    async with traced(system) as receiver:
        await warm_up(session, system, _urls(origin, items, len(items), "warm-2t"))
        run = await attempt(
            results,
            "pipeline_traced",
            pipeline.batch(
                session,
                system,
                _urls(origin, items, config.images, "run2t"),
                config.pollers,
                config.poll_interval,
            ),
        )
        if run is not None:
            # Flushed at the latest when the services stop, a moment after this.
            run["spans_received_before_stop"] = receiver.count
    return run


async def only_tracing_runs(
    config: Config, items: list[corpus.Item], results: dict[str, Any], log_dir: Path
) -> None:
    """Runs 2 and 2t alone (BENCH_ONLY=tracing), each after a warm-up nobody measures."""
    origin = Origin(items[0].path.parent, log_dir / "origin.log")
    origin.start()
    try:
        async with (
            running_system(config.rabbitmq_url, log_dir) as system,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
        ):
            say(f"system up (broker prefix {system.env['BROKER_PREFIX']})")
            system.watch["origin"] = [origin.process.pid] if origin.process else []
            await warm_up(session, system, _urls(origin, items, len(items), "warm-2"))
            say(f"2. pipeline: {config.images} images, {config.pollers} status pollers")
            await attempt(
                results,
                "pipeline",
                pipeline.batch(
                    session,
                    system,
                    _urls(origin, items, config.images, "run2"),
                    config.pollers,
                    config.poll_interval,
                ),
            )
            clear_images(system)
            await run_2t(config, session, system, origin, items, results)
            # Run 2 once more, after 2t (restarted untraced, warmed up again): the two untraced
            # runs bracket the traced one, so a drift (a growing database, the machine's other
            # load) shows as their difference instead of passing for tracing's cost.
            await warm_up(session, system, _urls(origin, items, len(items), "warm-2a"))
            say(f"2a. pipeline again, untraced: {config.images} images")
            await attempt(
                results,
                "pipeline_again",
                pipeline.batch(
                    session,
                    system,
                    _urls(origin, items, config.images, "run2a"),
                    config.pollers,
                    config.poll_interval,
                ),
            )
            say("stopping the system, deleting its queues, database and files")
    finally:
        origin.stop()


def _urls(origin: Origin, items: list[corpus.Item], count: int, tag: str) -> list[str]:
    return [origin.url(items[n % len(items)].name, f"{tag}-{n}") for n in range(count)]
