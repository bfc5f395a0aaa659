"""Runs 8 and 9: downloads where the network, not the codec, is the limit.

Small photos (the corpus downscaled to about 0.3 MP, so the codec runs several hundred a
second) all from one host. Each run has an origin process of its own on a new port, so a host
the processor has not seen: its download limit starts at the floor, as for a new shop.

- 8a: the host answers at once; 8b: it adds `latency_ms` (100) to every answer. 8b / 8a shows
  whether the per-host limit lets a fast host's latency be hidden (target >= 0.9).
- 9: the host serves 8 requests at once and answers 429 with `Retry-After: 1` beyond, with the
  same latency: images/s, against the 8 / latency that 8 at once allow, and the share of its
  requests it refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bench import local, pipeline, report
from bench.config import Config
from bench.corpus import Item
from bench.origin import Origin
from bench.steps import attempt, say
from bench.system import System

CAP = 8
RETRY_AFTER = 1
RUNS = ("hosts_0ms", "hosts_latency", "hosts_capped")


async def warm_up(
    system: System, session: aiohttp.ClientSession, small: list[Item], log_dir: Path
) -> None:
    """A batch nobody measures, from an origin of its own, so that 8a does not pay for a
    system that has just started (the full bench runs 8 after 2 and 4)."""
    say("warming the system up: 300 small photos")
    origin = Origin(small[0].path.parent, log_dir / "origin-warm-up.log")
    origin.start()
    try:
        urls = [origin.url(small[n % len(small)].name, f"warm-{n}") for n in range(300)]
        await pipeline.batch(session, system, urls, 1, 0.25)
    finally:
        origin.stop()


async def runs(
    config: Config,
    system: System,
    session: aiohttp.ClientSession,
    small: list[Item],
    results: dict[str, Any],
    log_dir: Path,
) -> None:
    say(f"8. codec limit on the small photos: {len(small)} images")
    await attempt(results, "hosts_codec", asyncio.to_thread(local.codec_limit, small))
    ms = config.latency_ms
    plan = (
        ("hosts_0ms", f"8a. one host, small photos, no latency: {config.host_images}", 0.0, None),
        ("hosts_latency", f"8b. the same, {ms:g} ms latency: {config.host_images}", ms, None),
        (
            "hosts_capped",
            f"9. a host capped at {CAP} at once, {ms:g} ms: {config.capped_images}",
            ms,
            CAP,
        ),
    )
    for key, title, latency, cap in plan:
        count = config.capped_images if cap else config.host_images
        say(f"{title} images")
        origin = Origin(small[0].path.parent, log_dir / f"origin-{key}.log")
        origin.start()
        try:
            assert origin.process is not None
            system.watch["origin"] = [origin.process.pid]
            origin.control(latency_ms=latency, cap=cap, retry_after=RETRY_AFTER)
            urls = [origin.url(small[n % len(small)].name, f"{key}-{n}") for n in range(count)]
            run = await attempt(results, key, pipeline.batch(session, system, urls, 1, 0.25))
            if run:
                run["origin"] = origin.control()
                run["latency_ms"], run["cap"] = latency, cap
                counts = run["origin"]
                say(
                    f"   {run['status']} in {run['seconds']:.1f}s: {run['images_per_s']:.1f} img/s"
                    f" ({run['processed']} processed, {run['failed']} failed); the host saw "
                    f"{counts['requests']} requests, {counts['refused']} refused, "
                    f"at most {counts['peak']} at once"
                )
                print(report.cpu_table(run["cpu"], run["images"]), flush=True)
        finally:
            system.watch.pop("origin", None)
            origin.stop()
