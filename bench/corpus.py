"""A deterministic corpus of product-photo-sized JPEGs made from the sample photos.

Each image i is drawn from its own seeded RNG (`<seed>:<i>`), so a corpus of n images is the
first n of any larger one and only missing images are ever built. An image is a grid of tiles;
each tile is a random crop of one of the real photos in demo/images (cat, coffee, astronaut,
hubble), mirrored at random, with its brightness and saturation nudged, resized (Lanczos) to
the tile. The size is log-uniform in 0.3-4 megapixels at a common product aspect ratio, and the
result is re-encoded at JPEG quality 85-92 (a quarter of them progressive).
"""

from __future__ import annotations

import json
import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from bench.config import REPO

SOURCES = REPO / "demo" / "images"
VERSION = 1
MIN_MP, MAX_MP = 0.3, 4.0
ASPECTS = [(1, 1), (1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (5, 4), (4, 5), (16, 9)]
TILE_WIDTH = (350, 750)  # pixels; about the sample photos' own scale, so little upscaling


@dataclass(frozen=True)
class Item:
    name: str
    path: Path
    width: int
    height: int
    bytes: int
    quality: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@cache
def _sources() -> list[Image.Image]:
    images = []
    for path in sorted(SOURCES.glob("*.jpg")):
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def _tile(rng: random.Random, width: int, height: int) -> Image.Image:
    source = rng.choice(_sources())
    scale = rng.uniform(0.45, 1.0)
    if source.width / source.height > width / height:
        crop_h = source.height * scale
        crop_w = crop_h * width / height
    else:
        crop_w = source.width * scale
        crop_h = crop_w * height / width
    x = rng.uniform(0, source.width - crop_w)
    y = rng.uniform(0, source.height - crop_h)
    tile = source.resize((width, height), Image.Resampling.LANCZOS, (x, y, x + crop_w, y + crop_h))
    if rng.random() < 0.5:
        tile = ImageOps.mirror(tile)
    tile = ImageEnhance.Brightness(tile).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Color(tile).enhance(rng.uniform(0.8, 1.2))


def make_image(index: int, seed: int, directory: str) -> dict[str, object]:
    """Build image `index` into `directory`; return its manifest entry."""
    rng = random.Random(f"{seed}:{index}")
    pixels = math.exp(rng.uniform(math.log(MIN_MP), math.log(MAX_MP))) * 1e6
    aspect_w, aspect_h = rng.choice(ASPECTS)
    height = round(math.sqrt(pixels * aspect_h / aspect_w))
    width = round(pixels / height)
    cols = max(1, round(width / rng.uniform(*TILE_WIDTH)))
    rows = max(1, round(height / rng.uniform(*TILE_WIDTH)))
    xs = [round(width * c / cols) for c in range(cols + 1)]
    ys = [round(height * r / rows) for r in range(rows + 1)]
    canvas = Image.new("RGB", (width, height))
    for r in range(rows):
        for c in range(cols):
            canvas.paste(_tile(rng, xs[c + 1] - xs[c], ys[r + 1] - ys[r]), (xs[c], ys[r]))
    quality = rng.randint(85, 92)
    name = f"{index:04d}.jpg"
    path = Path(directory) / name
    temporary = path.with_suffix(".tmp")
    canvas.save(temporary, "JPEG", quality=quality, progressive=rng.random() < 0.25)
    os.replace(temporary, path)
    return {"name": name, "width": width, "height": height, "quality": quality}


def _job(args: tuple[int, int, str]) -> dict[str, object]:
    return make_image(*args)


def build(count: int, seed: int, results: Path) -> list[Item]:
    """The first `count` corpus images, built where missing (cached under results/corpus/)."""
    directory = results / "corpus" / f"v{VERSION}-seed{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    manifest: dict[str, dict[str, object]] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    missing = [
        i
        for i in range(count)
        if f"{i:04d}.jpg" not in manifest or not (directory / f"{i:04d}.jpg").exists()
    ]
    if missing:
        print(f"building {len(missing)} corpus images in {directory}", flush=True)
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            jobs = [(i, seed, str(directory)) for i in missing]
            for entry in pool.map(_job, jobs, chunksize=4):
                manifest[str(entry["name"])] = entry
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    items = []
    for i in range(count):
        entry = manifest[f"{i:04d}.jpg"]
        path = directory / f"{i:04d}.jpg"
        items.append(
            Item(
                name=path.name,
                path=path,
                width=int(entry["width"]),  # type: ignore[call-overload]
                height=int(entry["height"]),  # type: ignore[call-overload]
                bytes=path.stat().st_size,
                quality=int(entry["quality"]),  # type: ignore[call-overload]
            )
        )
    return items


def summary(items: list[Item]) -> dict[str, object]:
    mps = sorted(i.megapixels for i in items)
    return {
        "images": len(items),
        "megapixels_min": round(mps[0], 2),
        "megapixels_median": round(mps[len(mps) // 2], 2),
        "megapixels_mean": round(sum(mps) / len(mps), 2),
        "megapixels_max": round(mps[-1], 2),
        "bytes_mean": round(sum(i.bytes for i in items) / len(items)),
        "example": asdict(items[0]) | {"path": str(items[0].path)},
    }


SMALL_MP = 0.3


def _shrink(job: tuple[str, str, int]) -> dict[str, object]:
    source, destination, quality = job
    with Image.open(source) as image:
        scale = math.sqrt(SMALL_MP * 1e6 / (image.width * image.height))
        size = (round(image.width * scale), round(image.height * scale))
        small = image.resize(size, Image.Resampling.LANCZOS)
    temporary = Path(destination).with_suffix(".tmp")
    small.save(temporary, "JPEG", quality=quality)
    os.replace(temporary, destination)
    return {"name": Path(destination).name, "width": size[0], "height": size[1]}


def build_small(items: list[Item], results: Path) -> list[Item]:
    """`items` downscaled to about SMALL_MP megapixels (a product thumbnail's size, so the
    codec runs several hundred a second and the network is the limit), at each one's own
    JPEG quality; cached under results/corpus/ beside the corpus."""
    directory = results / "corpus" / f"small{SMALL_MP:g}-{items[0].path.parent.name}"
    directory.mkdir(parents=True, exist_ok=True)
    missing = [i for i in items if not (directory / i.name).exists()]
    if missing:
        print(f"building {len(missing)} small photos in {directory}", flush=True)
        jobs = [(str(i.path), str(directory / i.name), i.quality) for i in missing]
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_shrink, jobs, chunksize=4))
    small = []
    for item in items:
        path = directory / item.name
        with Image.open(path) as image:
            width, height = image.size
        small.append(Item(item.name, path, width, height, path.stat().st_size, item.quality))
    return small
