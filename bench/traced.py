"""Run 2t: run 2 with every service tracing at a 10 % ratio, exporting over OTLP/HTTP to a
receiver in the bench process (`imgpipe_dev.otlp`), so its cost can be set against the
untraced run 2. `BENCH_ONLY=tracing` runs 2, 2t and 2 again (2a) alone.

2t (and, with `BENCH_ONLY=tracing`, 2 and 2a) runs on a system of its own, started for it,
so that it finds SecantusDB as fresh as run 2 found it: its CPU per image grew from run to
run within one server (13, 21, then 54 ms per image, even with a fresh database for each run;
measured while the dev tools still had it keep retryable-write records, which it scans on
every write), a drift that would pass for tracing's cost or hide it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import aiohttp

from bench import corpus, pipeline
from bench.config import Config
from bench.origin import Origin
from bench.steps import attempt, say
from bench.system import running_system
from imgpipe_dev.otlp import OtlpReceiver


def tracing_env(endpoint: str, ratio: float) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(ratio),
    }


async def on_a_system_of_its_own(
    config: Config,
    origin: Origin,
    items: list[corpus.Item],
    results: dict[str, Any],
    key: str,
    log_dir: Path,
    env: dict[str, str],
) -> dict[str, Any] | None:
    """A fresh system (services with `env`), a warm-up batch nobody measures (start-up, and
    the reuse records of these photos, as run 2 finds them), then run 2 with URLs of its own."""
    async with (
        running_system(config.rabbitmq_url, log_dir / key, env) as system,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
    ):
        if origin.process is not None:
            system.watch["origin"] = [origin.process.pid]
        say(f"   warming up: {len(items)} images")
        await pipeline.batch(
            session, system, _urls(origin, items, len(items), f"warm-{key}"), 1, 0.25
        )
        shutil.rmtree(system.data_dir / "images", ignore_errors=True)
        urls = _urls(origin, items, config.images, key)
        batch = pipeline.batch(session, system, urls, config.pollers, config.poll_interval)
        return await attempt(results, key, batch)


async def run_2t(
    config: Config,
    origin: Origin,
    items: list[corpus.Item],
    results: dict[str, Any],
    log_dir: Path,
) -> dict[str, Any] | None:
    ratio = config.trace_ratio
    say(f"2t. pipeline traced at {ratio:.0%} (OTLP to a local receiver): {config.images} images")
    receiver = OtlpReceiver(keep=False)
    receiver.start()
    try:
        env = tracing_env(receiver.url, ratio)
        run = await on_a_system_of_its_own(
            config, origin, items, results, "pipeline_traced", log_dir, env
        )
    finally:
        receiver.stop()
    if run is not None:
        run["spans_received"] = receiver.count
        run["trace_ratio"] = ratio
    return run


async def only_tracing_runs(
    config: Config, items: list[corpus.Item], results: dict[str, Any], log_dir: Path
) -> None:
    """Runs 2, 2t and 2a (2 again, untraced, after 2t), each on a system of its own: the two
    untraced runs bracket the traced one, so the machine's drift shows as their difference."""
    origin = Origin(items[0].path.parent, log_dir / "origin.log")
    origin.start()
    try:
        say(f"2. pipeline: {config.images} images, {config.pollers} status pollers")
        await on_a_system_of_its_own(config, origin, items, results, "pipeline", log_dir, {})
        await run_2t(config, origin, items, results, log_dir)
        say(f"2a. pipeline again, untraced: {config.images} images")
        await on_a_system_of_its_own(config, origin, items, results, "pipeline_again", log_dir, {})
    finally:
        origin.stop()


def _urls(origin: Origin, items: list[corpus.Item], count: int, tag: str) -> list[str]:
    return [origin.url(items[n % len(items)].name, f"{tag}-{n}") for n in range(count)]
