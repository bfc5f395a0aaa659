"""Runs 2 and 4-7 against the running system: batches to completion while pollers time
GET /status, the ingest of a large CSV, and single images timed to their webhook."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from typing import Any

import aiohttp

from bench.procstats import CpuSampler, memory_kb, pids_named
from bench.system import System, WebhookReceiver


def products_csv(urls: list[str]) -> bytes:
    """The seed's CSV, one image per row."""
    lines = ["S. No.,Product Name,Input Image Urls"]
    lines += [f"{n},SKU-{n:06d},{url}" for n, url in enumerate(urls, 1)]
    return ("\n".join(lines) + "\n").encode()


async def upload(
    session: aiohttp.ClientSession, system: System, body: bytes, webhook_url: str | None = None
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", body, filename="products.csv", content_type="text/csv")
    if webhook_url:
        form.add_field("webhook_url", webhook_url)
    # A connection of its own: a POST is not retried, and a pooled connection that the server's
    # keep-alive timeout (5 s) is closing just then fails the whole run.
    async with (
        aiohttp.ClientSession(
            timeout=session.timeout, connector=aiohttp.TCPConnector(force_close=True)
        ) as own,
        own.post(f"{system.ingest_url}/upload/", data=form) as response,
    ):
        accepted: dict[str, Any] = await response.json()
        if response.status != 202:
            raise RuntimeError(f"upload answered {response.status}: {str(accepted)[:500]}")
    return accepted


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def cpu_groups(system: System) -> dict[str, list[int]]:
    groups = {name: [p.pid] for name, p in system.stack.processes.items()}
    assert system.database.process is not None
    return (
        groups
        | {
            "secantusdb": [system.database.process.pid],
            "rabbitmq": pids_named("beam.smp"),
            "bench": [os.getpid()],
        }
        | system.watch
    )


async def batch(
    session: aiohttp.ClientSession,
    system: System,
    urls: list[str],
    pollers: int,
    interval: float,
) -> dict[str, Any]:
    """Upload `urls` and poll the status with `pollers` clients until the request is final."""
    timeline: list[tuple[float, int]] = []
    latencies: list[float] = []
    final: dict[str, Any] = {}
    done = asyncio.Event()
    body = products_csv(urls)
    timeout = max(300.0, len(urls) / 5)

    with CpuSampler(cpu_groups(system), split=("processor",)) as sampler:
        started = time.perf_counter()
        accepted = await upload(session, system, body)
        accepted_after = time.perf_counter() - started

        async def poll() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                async with session.get(accepted["status_url"]) as response:
                    doc = await response.json()
                t1 = time.perf_counter()
                latencies.append(t1 - t0)
                progress = doc["progress"]
                timeline.append((t1 - started, progress["processed"] + progress["failed"]))
                if doc["status"] in ("Completed", "Failed") and not done.is_set():
                    final.update(doc, seen_after=t1 - started)
                    done.set()
                await asyncio.sleep(interval)

        tasks = [asyncio.create_task(poll()) for _ in range(pollers)]
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = final["seen_after"]
    timeline.sort()
    n = len(urls)
    t10 = next(t for t, d in timeline if d >= 0.1 * n)
    t90 = next(t for t, d in timeline if d >= 0.9 * n)
    all_in = next((t for t, d in timeline if d >= n), elapsed)
    cpu = sampler.result()
    return {
        "images": n,
        "status": final["status"],
        "processed": final["progress"]["processed"],
        "failed": final["progress"]["failed"],
        "failures_by_reason": final.get("failures_by_reason", {}),
        "upload_s": accepted_after,
        "completion_tail_s": elapsed - all_in,  # last outcome seen -> Completed seen
        "seconds": elapsed,
        "images_per_s": n / elapsed,
        "steady_images_per_s": 0.8 * n / (t90 - t10) if t90 > t10 else None,
        "status_polls": len(latencies),
        "status_p50_ms": 1000 * percentile(latencies, 50),
        "status_p99_ms": 1000 * percentile(latencies, 99),
        "status_max_ms": 1000 * max(latencies),
        "pollers": pollers,
        "timeline": [(round(t, 3), d) for t, d in timeline],
        "cpu": cpu,
        "cpu_ms_per_image": {k: round(1000 * v["cpu_seconds"] / n, 2) for k, v in cpu.items()},
        "request_id": accepted["request_id"],
        # Set when the upload was traced and sampled (run 2t).
        "trace_id": final.get("trace_id"),
        "reused": final.get("reused", {}),
        "bytes_not_downloaded": final.get("bytes_not_downloaded", 0),
    }


async def processor_counter(session: aiohttp.ClientSession, system: System, name: str) -> float:
    """One counter of the processor's /metrics (0 if it has no sample yet)."""
    url = f"http://127.0.0.1:{system.env['METRICS_PORT']}/metrics"
    async with session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


async def one_image(
    session: aiohttp.ClientSession, system: System, receiver: WebhookReceiver, urls: list[str]
) -> dict[str, Any]:
    """Each URL uploaded alone, one after the other: upload answer -> webhook received."""
    latencies: list[float] = []
    totals: list[float] = []
    for url in urls:
        started = time.perf_counter()
        accepted = await upload(session, system, products_csv([url]), receiver.url)
        answered = time.perf_counter()
        arrived = await receiver.arrival(accepted["request_id"], 60)
        latencies.append(arrived - answered)
        totals.append(arrived - started)
    return {
        "runs": len(urls),
        "p50_ms": 1000 * percentile(latencies, 50),
        "p90_ms": 1000 * percentile(latencies, 90),
        "min_ms": 1000 * min(latencies),
        "max_ms": 1000 * max(latencies),
        "upload_to_webhook_p50_ms": 1000 * percentile(totals, 50),
        "all_ms": [round(1000 * x, 1) for x in latencies],
    }


async def ingest(session: aiohttp.ClientSession, system: System, urls: list[str]) -> dict[str, Any]:
    """Stop the processor (so the jobs just wait in the queue), upload `urls` as one CSV and
    time it to the 202; the ingest process's peak RSS (VmHWM) before and after."""
    await asyncio.to_thread(system.stack.kill, "processor", signal.SIGTERM)
    pid = system.pid("ingest")
    body = products_csv(urls)
    before = memory_kb(pid, "VmHWM") or 0
    with CpuSampler(cpu_groups(system)) as sampler:
        started = time.perf_counter()
        accepted = await upload(session, system, body)
        elapsed = time.perf_counter() - started
    after = memory_kb(pid, "VmHWM") or 0
    return {
        "rows": len(urls),
        "csv_bytes": len(body),
        "seconds": elapsed,
        "rows_per_s": len(urls) / elapsed,
        "peak_rss_mb_before": before / 1024,
        "peak_rss_mb": after / 1024,
        "cpu": sampler.result(),
        "request_id": accepted["request_id"],
    }
