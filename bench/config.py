"""What one bench run does: defaults (full or --quick), overridden by BENCH_* variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    images: int = 2000  # run 2: images in the pipeline batch (one URL per CSV row)
    latency_images: int = 2000  # run 4: images in the batch served with origin latency
    latency_ms: float = 100.0  # run 4 (and its naive baseline): added delay per response
    codec_images: int = 400  # run 1: images recompressed in the tight loop
    naive_images: int = 100  # run 3: images the sequential baseline handles
    naive_latency_images: int = 30  # run 3b: the same, with the origin latency
    ingest_rows: int = 100_000  # run 5: rows in the ingest CSV
    one_image_runs: int = 20  # run 7: single-image uploads timed to their webhook
    pollers: int = 8  # run 6: concurrent GET /status pollers during run 2
    poll_interval: float = 0.1  # seconds each poller waits between its requests
    corpus: int = 400  # distinct photos the origin serves
    host_images: int = 2000  # runs 8a and 8b: small photos from one host
    capped_images: int = 600  # run 9: small photos from a host that serves 8 at once
    small_corpus: int = 100  # distinct small photos (the first corpus photos, downscaled)
    only: str = ""  # "hosts": 8 and 9; "reuse": 1, 2, 2r and 2d; "tracing": 2, 2t and 2a
    trace_ratio: float = 0.1  # run 2t: OTEL_TRACES_SAMPLER_ARG (parentbased_traceidratio)
    seed: int = 20261130  # corpus generator seed
    results: Path = REPO / "results"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    quick: bool = False


QUICK = {
    "images": 200,
    "latency_images": 200,
    "codec_images": 100,
    "naive_images": 20,
    "naive_latency_images": 10,
    "ingest_rows": 10_000,
    "one_image_runs": 5,
    "pollers": 4,
    "corpus": 100,
    "host_images": 300,
    "capped_images": 200,
    "small_corpus": 50,
}


def load(quick: bool, environ: dict[str, str] | None = None) -> Config:
    """Defaults, then --quick, then BENCH_<FIELD> (e.g. BENCH_IMAGES=5000) and RABBITMQ_URL."""
    env = dict(os.environ if environ is None else environ)
    config = Config(quick=quick)
    if quick:
        config = replace(config, **QUICK)  # type: ignore[arg-type]
    changes: dict[str, object] = {}
    for field in fields(Config):
        raw = env.get(f"BENCH_{field.name.upper()}")
        if raw is None or field.name == "quick":
            continue
        default = getattr(config, field.name)
        changes[field.name] = type(default)(raw)
    if "BENCH_IMAGES" in env and "BENCH_LATENCY_IMAGES" not in env:
        changes["latency_images"] = changes["images"]
    if "RABBITMQ_URL" in env:
        changes["rabbitmq_url"] = env["RABBITMQ_URL"]
    return replace(config, **changes)  # type: ignore[arg-type]
