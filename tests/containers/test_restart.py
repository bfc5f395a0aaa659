"""`docker compose down` then `up`: the containers and their network go, the volumes stay, and
every request finished before is still there, with its output CSV and every image."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.containers.checks import output_csv, status
from tests.containers.seed import run_seed_request
from tests.containers.stack import Stack


async def fetch_ok(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(url) as response:
        await response.read()
        return response.status == 200 and response.headers["Content-Type"] == "image/jpeg"


async def test_down_and_up_keep_every_finished_request(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    assert not stack.s3, "runs on the local file store (before test_s3_profile)"
    if not stack.finished:  # run on its own, without the earlier tests' requests
        await run_seed_request(http, stack, files_base=f"{stack.url('STATUS')}/files/")
    await asyncio.to_thread(stack.down)
    left = await asyncio.to_thread(stack.leftovers)
    assert left["containers"] == [] and left["networks"] == []
    assert len(left["volumes"]) >= 3, left  # mongo-data, rabbitmq-data, files

    await asyncio.to_thread(stack.up)
    links = []
    for request_id, before in stack.finished.items():
        after = await status(http, stack, request_id)
        assert (after["status"], after["progress"]) == (before["status"], before["progress"])
        table = await output_csv(http, after["output_csv_url"])
        assert len(table) > 1
        links += [u for row in table[1:] for u in row[3].split(",") if u]
    assert len(links) == sum(f["progress"]["processed"] for f in stack.finished.values())
    for start in range(0, len(links), 50):
        batch = links[start : start + 50]
        assert all(await asyncio.gather(*(fetch_ok(http, u) for u in batch))), batch
