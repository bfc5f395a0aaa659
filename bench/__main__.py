"""`python -m bench [--quick]`: every figure of the benchmark in one run (see README.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import time
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import PIL

from bench import corpus, hosts, local, pipeline, procstats, report, traced
from bench.config import Config, load
from bench.origin import Origin
from bench.steps import attempt, say
from bench.system import System, on_s3, running_system, webhook_receiver

# Runs 2r and 2d take 1-3 s: polled every 0.25 s (as run 4 is), their time would be rounded up
# by as much as a sixth. Their one poller asks 20 times a second instead; its cost counts in the
# status service's CPU in their tables.
SHORT_RUN_POLL = 0.05

# BENCH_ONLY's choices, and the figures each reports.
ONLY_ROWS = {
    "hosts": ("8", "8a", "8b", "9"),
    "reuse": ("1", "2", "2r", "2d"),
    "tracing": ("2", "2t", "2a"),
}


def urls_for(origin: Origin, items: list[corpus.Item], count: int, tag: str) -> list[str]:
    """`count` distinct URLs cycling through the corpus (the query makes each one unique)."""
    return [origin.url(items[n % len(items)].name, f"{tag}-{n}") for n in range(count)]


async def system_runs(
    config: Config,
    origin: Origin,
    items: list[corpus.Item],
    small: list[corpus.Item],
    results: dict[str, Any],
    log_dir: Path,
) -> None:
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        running_system(config.rabbitmq_url, log_dir) as system,
        webhook_receiver() as receiver,
        aiohttp.ClientSession(timeout=timeout) as session,
    ):
        say(
            f"system up (broker prefix {system.env['BROKER_PREFIX']}, "
            f"SecantusDB {system.database.url})"
        )
        if origin.process is not None:
            system.watch["origin"] = [origin.process.pid]
        if config.only != "reuse":
            say(f"7. one image at a time to its webhook, {config.one_image_runs} runs")
            singles = urls_for(origin, items, config.one_image_runs, "one")
            one = pipeline.one_image(session, system, receiver, singles)
            await attempt(results, "one_image", one)

        say(f"2+6. pipeline: {config.images} images, {config.pollers} status pollers")
        urls = urls_for(origin, items, config.images, "run2")
        run = await attempt(
            results,
            "pipeline",
            pipeline.batch(session, system, urls, config.pollers, config.poll_interval),
        )
        _show_batch(run)

        say("2r. the same request again: every source unchanged, revalidated by its ETag")
        run = await attempt(
            results,
            "pipeline_repeat",
            counted(
                session, system, origin, pipeline.batch(session, system, urls, 1, SHORT_RUN_POLL)
            ),
        )
        _show_batch(run)
        distinct = max(1, config.images // 10)
        say(f"2d. {config.images} rows over {distinct} distinct URLs")
        urls = [
            urls_for(origin, items, distinct, "run2d")[n % distinct] for n in range(config.images)
        ]
        run = await attempt(
            results,
            "pipeline_duplicates",
            counted(
                session, system, origin, pipeline.batch(session, system, urls, 1, SHORT_RUN_POLL)
            ),
        )
        _show_batch(run)
        _clear_images(system)
        if config.only == "reuse":
            return

        _show_batch(await traced.run_2t(config, origin, items, results, log_dir))

        say(f"4. pipeline: {config.latency_images} images, {config.latency_ms:g} ms latency")
        origin.set_latency(config.latency_ms)
        urls = urls_for(origin, items, config.latency_images, "run4")
        run = await attempt(
            results, "pipeline_latency", pipeline.batch(session, system, urls, 1, 0.25)
        )
        origin.set_latency(0)
        _show_batch(run)
        _clear_images(system)

        await hosts.runs(config, system, session, small, results, log_dir)
        _clear_images(system)

        async with on_s3(system, log_dir) as s3:
            say(f"2s. pipeline on the s3 backend (moto at {s3.url}): {config.images} images")
            urls = urls_for(origin, items, config.images, "run2s")
            run = await attempt(
                results,
                "pipeline_s3",
                pipeline.batch(session, system, urls, config.pollers, config.poll_interval),
            )
            _show_batch(run)

        say(f"5. ingest: {config.ingest_rows} rows (processor stopped; jobs wait in the queue)")
        urls = urls_for(origin, items, config.ingest_rows, "ingest")
        run = await attempt(results, "ingest", pipeline.ingest(session, system, urls))
        if run:
            say(f"   {run['rows_per_s']:,.0f} rows/s, peak RSS {run['peak_rss_mb']:.0f} MB")
            print(report.cpu_table(run["cpu"], run["rows"]), flush=True)
        say("stopping the system, deleting its queues, database and files")


async def counted(
    session: aiohttp.ClientSession,
    system: System,
    origin: Origin,
    work: Awaitable[dict[str, Any]],
) -> dict[str, Any]:
    """`work`'s result with what it cost the origin (bodies sent, 304s) and the encoder."""
    encodes = "imgpipe_processor_encodes_total"
    before, encoded = origin.counts(), await pipeline.processor_counter(session, system, encodes)
    result = await work
    after = origin.counts()
    return result | {
        "full_downloads": after["served"] - before["served"],
        "not_modified": after["not_modified"] - before["not_modified"],
        "encodes": int(await pipeline.processor_counter(session, system, encodes) - encoded),
    }


def _show_batch(run: dict[str, Any] | None) -> None:
    if run:
        say(
            f"   {run['status']} in {run['seconds']:.1f}s: {run['images_per_s']:.1f} img/s "
            f"({run['processed']} processed, {run['failed']} failed)"
        )
        print(report.cpu_table(run["cpu"], run["images"]), flush=True)
        if "encodes" in run:
            say(
                f"   {run['full_downloads']} downloads, {run['not_modified']} not modified, "
                f"{run['encodes']} encodes; reused {run['reused']}"
            )


def _clear_images(system: System) -> None:
    shutil.rmtree(system.data_dir / "images", ignore_errors=True)


async def main_async(config: Config) -> int:
    # SIGTERM (and Ctrl-C, through asyncio.run) cancel the run; every `finally` still cleans up.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = config.results / f"bench-{stamp}"
    log_dir = out / "logs"
    log_dir.mkdir(parents=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "platform": platform.platform(),
        },
    }
    flags = (" --quick" if config.quick else "") + (f" --only {config.only}" if config.only else "")
    say(f"bench{flags}: results in {out}")
    busy = await asyncio.to_thread(procstats.machine_busy)
    results["machine"]["busy_before_percent"] = round(busy, 1)
    if busy > 15:
        say(f"WARNING: the machine is already {busy:.0f}% busy; the figures will be low")
    hosts_only = config.only == "hosts"
    count = config.small_corpus if hosts_only else max(config.corpus, config.small_corpus)
    items = await asyncio.to_thread(corpus.build, count, config.seed, config.results)
    small = await asyncio.to_thread(
        corpus.build_small, items[: config.small_corpus], config.results
    )
    items = items[: config.corpus]
    for key, photos in (("corpus", items), ("small_corpus", small)):
        results[key] = corpus.summary(photos)
        say(
            f"{key}: {results[key]['images']} photos, "
            f"{results[key]['megapixels_min']}-{results[key]['megapixels_max']} MP, "
            f"mean {results[key]['megapixels_mean']} MP"
        )
    if hosts_only:
        await only_host_runs(config, small, results, log_dir)
    elif config.only == "tracing":
        await traced.only_tracing_runs(config, items, results, log_dir)
    else:
        await every_run(config, items, small, results, log_dir)
    results["total_seconds"] = time.perf_counter() - started
    rows = report.rows(results)
    if config.only:
        rows = [row for row in rows if row.figure.split(".")[0] in ONLY_ROWS[config.only]]
        if config.only == "tracing":
            # No codec limit is timed in this mode.
            rows = [row for row in rows if "codec" not in row.figure]
    report.write(out, results, rows)
    print("\n" + report.table(rows) + "\n", flush=True)
    runs = ("pipeline", "pipeline_traced", "pipeline_again", "pipeline_latency", "pipeline_s3")
    runs = (*runs, "ingest", *hosts.RUNS)
    for key in runs:
        other = (results.get(key) or {}).get("cpu", {}).get("(other processes)")
        if other and other["cpu_percent"] > 10:
            print(f"note: other processes used {other['cpu_percent']:.0f}% CPU during {key}")
    for key, error in results.get("errors", {}).items():
        print(f"run {key} failed: {error}")
    say(f"done in {results['total_seconds']:.0f}s; {out / 'results.json'}, {out / 'chart.png'}")
    return 1 if results.get("errors") else 0


async def only_host_runs(
    config: Config, small: list[corpus.Item], results: dict[str, Any], log_dir: Path
) -> None:
    """Runs 8 and 9 alone (BENCH_ONLY=hosts): the system, and nothing else on it."""
    async with (
        running_system(config.rabbitmq_url, log_dir) as system,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session,
    ):
        say(f"system up (broker prefix {system.env['BROKER_PREFIX']})")
        await hosts.warm_up(system, session, small, log_dir)
        await hosts.runs(config, system, session, small, results, log_dir)
        say("stopping the system, deleting its queues, database and files")


async def every_run(
    config: Config,
    items: list[corpus.Item],
    small: list[corpus.Item],
    results: dict[str, Any],
    log_dir: Path,
) -> None:
    origin = Origin(items[0].path.parent, log_dir / "origin.log")
    origin.start()
    try:
        say(f"1. codec limit: {config.codec_images} images, {os.cpu_count()} processes")
        codec_items = [
            items[n % len(items)] for n in range(min(config.images, config.codec_images))
        ]
        await attempt(results, "codec", asyncio.to_thread(local.codec_limit, codec_items))
        if config.only == "reuse":
            await system_runs(config, origin, items, small, results, log_dir)
            return
        say(f"3. naive sequential: {config.naive_images} images")
        urls = urls_for(origin, items, config.naive_images, "naive")
        await attempt(results, "naive", asyncio.to_thread(local.naive, urls))
        say(
            f"3. naive sequential: {config.naive_latency_images} images, "
            f"{config.latency_ms:g} ms latency"
        )
        origin.set_latency(config.latency_ms)
        urls = urls_for(origin, items, config.naive_latency_images, "naive-latency")
        await attempt(results, "naive_latency", asyncio.to_thread(local.naive, urls))
        origin.set_latency(0)
        await system_runs(config, origin, items, small, results, log_dir)
    finally:
        origin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke run (about a minute); BENCH_* variables still apply",
    )
    parser.add_argument(
        "--only",
        choices=list(ONLY_ROWS),
        help="only these runs: 'hosts' for 8 and 9, 'reuse' for 1, 2, 2r and 2d, 'tracing' "
        "for 2, 2t and 2a (also BENCH_ONLY=...)",
    )
    args = parser.parse_args()
    config = load(args.quick)
    if args.only:
        config = replace(config, only=args.only)
    if config.only not in ("", *ONLY_ROWS):
        parser.error(f"BENCH_ONLY={config.only!r}: the choices are {', '.join(ONLY_ROWS)}")
    try:
        code = asyncio.run(main_async(config))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("bench interrupted; what it started has been stopped and removed", flush=True)
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
