"""`docker compose up --scale processor=3`: three processor containers share one request."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.containers.checks import assert_exact_result, images_csv, upload
from tests.containers.stack import Stack

ROWS, PER_ROW = 300, 2  # 600 images


async def images_processed(http: aiohttp.ClientSession, stack: Stack) -> dict[str, float]:
    """Each processor container's count of images stored, from its /metrics."""
    counts = {}
    for container in stack.containers("processor"):
        port = stack.inspect(container)["NetworkSettings"]["Ports"]["8030/tcp"][0]["HostPort"]
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        line = next(x for x in text.splitlines() if x.startswith("imgpipe_processor_images_proc"))
        counts[container] = float(line.split()[-1])
    return counts


async def test_three_processors_give_600_images_one_outcome_each(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await asyncio.to_thread(stack.up, "--scale", "processor=3")
    before = await images_processed(http, stack)
    assert len(before) == 3

    request_id = await upload(http, stack, images_csv("scale", ROWS, PER_ROW))
    await assert_exact_result(http, stack, request_id, ROWS, PER_ROW)

    after = await images_processed(http, stack)
    done = {c: after[c] - before[c] for c in before}
    assert sum(done.values()) == ROWS * PER_ROW, f"each image encoded once in all: {done}"
    assert all(n > 0 for n in done.values()), f"all three processors took part: {done}"
