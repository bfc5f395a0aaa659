"""What the tests of the S3 backend share: a client for looking into the bucket, new buckets,
and a proxy in front of the S3 server that fails on demand (503 SlowDown, delays, down)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiohttp
from aiobotocore.session import get_session
from aiohttp import web

from imgpipe_dev.s3local import CREDENTIALS, REGION, create_bucket

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client


@contextlib.asynccontextmanager
async def s3_client(endpoint_url: str) -> AsyncIterator[S3Client]:
    """A client of our own (not the services'), to look at what they stored."""
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ) as client:
        yield client


async def new_bucket(endpoint_url: str) -> str:
    """A bucket with a unique name, so that tests never see each other's objects."""
    name = f"imgpipe-test-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(create_bucket, endpoint_url, name)
    return name


async def keys_in(endpoint_url: str, bucket: str, prefix: str = "") -> list[str]:
    async with s3_client(endpoint_url) as client:
        paginator = client.get_paginator("list_objects_v2")
        return [
            item["Key"]
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
# Not forwarded: they describe one hop, and aiohttp sets its own.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "expect"}


class FaultyS3:
    """An HTTP proxy to the S3 server that answers 503 SlowDown while `failing(request)` is
    true, waits `delay` seconds before each answer, and can go down (connections refused,
    open ones cut) and come back on the same port."""

    def __init__(self, upstream: str, port: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port
        self.failing: Callable[[web.Request], bool] = lambda request: False
        self.delay = 0.0
        self.refused = 0  # requests answered 503
        self.forwarded = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing(request):
            self.refused += 1
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        self.forwarded += 1
        return web.Response(status=answer.status, body=body, headers=kept)

    async def up(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        # A short shutdown timeout: going down cuts the requests in flight, as a crash would.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.down()
        if self._session is not None:
            await self._session.close()
