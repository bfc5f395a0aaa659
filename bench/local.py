"""Runs 1 and 3: the codec's limit (no network) and the seed's naive sequential approach."""

from __future__ import annotations

import io
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from bench.corpus import Item
from bench.origin import HTTP
from imgpipe_processor.transform import configure_worker, recompress

MAX_PIXELS = 50_000_000  # the processor's default MAX_PIXELS
QUALITY = 50


def _recompress_file(job: tuple[str, str]) -> int:
    source, destination = job
    result = recompress(Path(source).read_bytes(), MAX_PIXELS, QUALITY)
    Path(destination).write_bytes(result.jpeg)  # as the processor's store would
    return int(result.width * result.height)


def codec_limit(items: list[Item], workers: int | None = None) -> dict[str, float]:
    """The processor's own recompress() over `items` in a process pool as wide as the machine
    (spawned like the processor's), files read from the page cache: the ceiling for any
    pipeline on this machine."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="imgpipe-bench-codec-") as out,
        ProcessPoolExecutor(workers, context, configure_worker, (MAX_PIXELS,)) as pool,
    ):
        warm = [(str(i.path), f"{out}/warm-{n}.jpg") for n, i in enumerate(items[: workers * 2])]
        list(pool.map(_recompress_file, warm))  # start every worker, import Pillow
        jobs = [(str(i.path), f"{out}/{n}.jpg") for n, i in enumerate(items)]
        started = time.perf_counter()
        pixels = sum(pool.map(_recompress_file, jobs, chunksize=2))
        elapsed = time.perf_counter() - started
    return {
        "workers": workers,
        "images": len(items),
        "seconds": elapsed,
        "images_per_s": len(items) / elapsed,
        "megapixels_per_s": pixels / 1e6 / elapsed,
        "megapixels_per_image": pixels / 1e6 / len(items),
    }


def naive(urls: list[str]) -> dict[str, float]:
    """The seed's way: one process, one image after the other, a blocking urllib download,
    then Pillow decodes and saves a quality-50 JPEG."""
    download = codec = 0.0
    with tempfile.TemporaryDirectory(prefix="imgpipe-bench-naive-") as out:
        started = time.perf_counter()
        for n, url in enumerate(urls):
            t0 = time.perf_counter()
            with HTTP.open(url, timeout=30) as response:
                data = response.read()
            t1 = time.perf_counter()
            with Image.open(io.BytesIO(data)) as image:
                image.convert("RGB").save(f"{out}/{n}.jpg", "JPEG", quality=QUALITY)
            t2 = time.perf_counter()
            download += t1 - t0
            codec += t2 - t1
        elapsed = time.perf_counter() - started
    return {
        "images": len(urls),
        "seconds": elapsed,
        "images_per_s": len(urls) / elapsed,
        "download_s_per_image": download / len(urls),
        "codec_s_per_image": codec / len(urls),
    }
