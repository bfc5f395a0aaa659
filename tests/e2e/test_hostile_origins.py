"""Hostile and broken image origins against the whole system, with the SSRF guard on.

Private networks are NOT allowed here, except 127.0.0.2 (IMGPIPE_ALLOWED_NETWORKS), where the
test's origin lives. A second server on 127.0.0.1 plays the internal service an attacker wants
to reach: its access log must stay empty whatever the URLs or redirects say.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from imgpipe_dev.infra import free_port
from tests.conftest import SAMPLE_IMAGES, Namespace, new_namespace, serving
from tests.e2e.conftest import RunningStack, stack_running
from tests.e2e.test_pipeline import upload, wait_for_final_status

ORIGIN_HOST = "127.0.0.2"  # loopback too, but explicitly allowed


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims `width` x `height` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data[12:29]  # chunk type + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.fixture(scope="module")
async def internal_service() -> AsyncIterator[tuple[int, list[str]]]:
    """What must never be reached: a server on 127.0.0.1 logging every request."""
    port = free_port()
    log: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        log.append(request.path)
        return web.Response(body=(SAMPLE_IMAGES / "cat.jpg").read_bytes())

    app = web.Application()
    app.router.add_get("/{tail:.*}", anything)
    async with serving(app, port):
        yield port, log


@pytest.fixture(scope="module")
async def hostile_origin(internal_service: tuple[int, list[str]]) -> AsyncIterator[str]:
    internal_port = internal_service[0]
    port = free_port()
    cat = (SAMPLE_IMAGES / "cat.jpg").read_bytes()
    routes = web.RouteTableDef()

    @routes.get("/ok.jpg")
    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=cat, content_type="image/jpeg")

    @routes.get("/html.jpg")
    async def html(request: web.Request) -> web.Response:
        return web.Response(body=b"<html><body>Not found</body></html>", content_type="image/jpeg")

    @routes.get("/bomb.png")
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=png_claiming(100_000, 100_000), content_type="image/png")

    @routes.get("/truncated.jpg")
    async def truncated(request: web.Request) -> web.Response:
        return web.Response(body=cat[: len(cat) // 2], content_type="image/jpeg")

    @routes.get("/big.jpg")
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)  # chunked: no Content-Length to trust
        for _ in range(40):
            await response.write(b"\xff" * 65536)
        return response

    @routes.get("/slow.jpg")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)  # longer than DOWNLOAD_TIMEOUT
        return web.Response(body=cat, content_type="image/jpeg")

    @routes.get("/to-internal.jpg")
    async def to_internal(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{internal_port}/admin.jpg")

    @routes.get("/loop.jpg")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop.jpg")

    app = web.Application()
    app.add_routes(routes)
    async with serving(app, port, ORIGIN_HOST):
        yield f"http://{ORIGIN_HOST}:{port}"


@pytest.fixture(scope="module")
async def guarded_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="module")
def guarded_stack(
    guarded_namespace: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    root: Path = tmp_path_factory.mktemp("guarded")
    settings = {
        "IMGPIPE_ALLOWED_NETWORKS": f"{ORIGIN_HOST}/32",
        "CONNECT_TIMEOUT": "1",
        "DOWNLOAD_TIMEOUT": "1",
        "MAX_DOWNLOAD_BYTES": "1000000",
        "MAX_REDIRECTS": "3",
    }
    with stack_running(guarded_namespace, root, settings) as running:
        yield running


async def test_every_hostile_origin_ends_as_a_failure_with_its_exact_reason(
    guarded_stack: RunningStack,
    hostile_origin: str,
    internal_service: tuple[int, list[str]],
) -> None:
    internal_port, internal_log = internal_service
    internal = f"127.0.0.1:{internal_port}"
    cases = [
        (f"{hostile_origin}/ok.jpg", None),
        (f"{hostile_origin}/html.jpg", "not_an_image"),
        (f"{hostile_origin}/bomb.png", "bomb"),
        (f"{hostile_origin}/truncated.jpg", "corrupt"),
        (f"{hostile_origin}/big.jpg", "too_large"),
        (f"{hostile_origin}/slow.jpg", "timeout"),
        (f"{hostile_origin}/nothing-here.jpg", "http_404"),
        (f"{hostile_origin}/to-internal.jpg", "blocked_address"),
        (f"{hostile_origin}/loop.jpg", "too_many_redirects"),
        (f"http://{internal}/direct.jpg", "blocked_address"),
        (f"http://localhost:{internal_port}/by-name.jpg", "blocked_address"),
        (f"http://[::ffff:127.0.0.1]:{internal_port}/mapped.jpg", "blocked_address"),
        (f"http://2130706433:{internal_port}/decimal.jpg", "invalid_url"),
        ("http://no-such-host.invalid/x.jpg", "dns"),
    ]
    text = "S. No.,Product Name,Input Image Urls\n" + "".join(
        f"{n + 1},CASE{n + 1},{url}\n" for n, (url, _) in enumerate(cases)
    )
    async with aiohttp.ClientSession() as session:
        accepted = await upload(session, guarded_stack, text, webhook_url="")
        status: dict[str, Any] = await wait_for_final_status(session, accepted["status_url"])

    expected = [(n + 1, 1, url, reason) for n, (url, reason) in enumerate(cases) if reason]
    got = [(f["row"], f["position"], f["url"], f["reason"]) for f in status["failures"]]
    assert got == expected
    assert status["progress"] == {"total": len(cases), "processed": 1, "failed": len(expected)}
    reasons: dict[str, int] = {}
    for *_, reason in expected:
        reasons[reason] = reasons.get(reason, 0) + 1
    assert status["failures_by_reason"] == reasons
    assert internal_log == [], "the internal service must never be reached"
