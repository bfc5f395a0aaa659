"""One compose stack for all the container tests: built and brought up once (`up --wait`),
removed with its volumes at the end, with a check that nothing of it is left.

The tests share it to stay within the suite's time budget, so their order is part of the
design: the ones that only read come first, the ones that stop, kill or reconfigure services
later, and the s3 profile (which recreates processor and status on S3) last."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from imgpipe_dev.docker_engine import DockerUnavailable
from imgpipe_dev.standins import ensure_base_images
from tests.conftest import SAMPLE_IMAGES
from tests.containers.stack import Stack

ORDER = (
    "test_pipeline.py",
    "test_images.py",
    "test_health.py",
    "test_scale.py",
    "test_faults.py",
    "test_restart.py",
    "test_s3_profile.py",
)
SETUP_TIMEOUT = 900  # seconds: a cold build of the images, then `up --wait`
# Sets of small images, each its own content, so that no request can reuse another's work.
IMAGE_SETS = {"scale": 600, "kill-processor": 300, "kill-status": 300, "stop": 300}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the container tests in ORDER, in the places they already hold in the session. The
    first one builds and starts the stack, which on a new machine takes longer than the suite's
    per-test limit allows."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    ordered = sorted((items[i] for i in slots), key=lambda item: ORDER.index(item.path.name))
    if ordered:
        ordered[0].add_marker(pytest.mark.timeout(SETUP_TIMEOUT))
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def write_images(root: Path) -> None:
    """The origin's files: the sample photos under seed/ (and one again under seed/other/),
    and IMAGE_SETS of 96x64 noise images under <set>/<n>.jpg."""
    seed = root / "seed"
    (seed / "other").mkdir(parents=True)
    for path in SAMPLE_IMAGES.glob("*.jpg"):
        shutil.copy(path, seed / path.name)
    shutil.copy(SAMPLE_IMAGES / "cat.jpg", seed / "other" / "cat.jpg")
    for number, (name, count) in enumerate(IMAGE_SETS.items()):
        folder = root / name
        folder.mkdir()
        noise = random.Random(number)
        for n in range(count):
            image = Image.frombytes("RGB", (96, 64), noise.randbytes(96 * 64 * 3))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=85)
            (folder / f"{n}.jpg").write_bytes(buffer.getvalue())
    # The origin container runs as nobody: everything readable by all.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        base = ensure_base_images()
    except (DockerUnavailable, subprocess.CalledProcessError, OSError, SystemExit) as exc:
        pytest.fail(f"Docker could not be set up, so the container tests cannot run: {exc}")
    images = tmp_path_factory.mktemp("origin")
    write_images(images)
    running = Stack(base, images, tmp_path_factory.mktemp("compose"))
    try:
        running.build()
        running.up()
        yield running
    finally:
        print(running.logs())
        running.down("--volumes", "--remove-orphans")
        left = running.leftovers()
        assert not any(left.values()), f"compose project {running.project} left {left}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session
