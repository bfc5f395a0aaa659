"""The seed's workflow in containers: `compose up --wait`, an upload from the host, images from
an image server container, a signed webhook to the notifier's receiver, every link checked."""

from __future__ import annotations

import aiohttp

from tests.containers.seed import run_seed_request
from tests.containers.stack import Stack


async def test_the_seed_csv_is_processed_by_the_containers(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await run_seed_request(http, stack, files_base=f"{stack.url('STATUS')}/files/")
