"""The `s3` profile (docker-compose.s3.yml): processor and status recreated on an S3 bucket
(SeaweedFS, or moto's server where its image cannot be had), every link from the bucket."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.containers.seed import run_seed_request
from tests.containers.stack import Stack


async def test_the_s3_profile_keeps_files_in_the_bucket_only(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    stack.s3 = True
    await asyncio.to_thread(stack.up)
    for service in ("processor", "status"):
        env = stack.inspect(stack.containers(service)[0])["Config"]["Env"]
        assert "STORAGE_BACKEND=s3" in env

    final = await run_seed_request(http, stack, files_base=f"{stack.url('S3')}/imgpipe/")

    request_id = final["request_id"]
    status_container = stack.containers("status")[0]
    for path in (f"images/{request_id}", f"outputs/output_{request_id}.csv"):
        found = stack.exec(status_container, "ls", f"/data/files/{path}")
        assert found.returncode != 0, f"{path} is in the files volume"
