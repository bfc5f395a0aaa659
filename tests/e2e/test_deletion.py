"""Deleting requests on the four services as processes, on both backends, with API keys:
links another request shares keep working, the collector removes what nobody refers to any
more, other tenants and unfinished requests are refused, and `imgpipe delete` says which.

The stack of this module runs its collector every 0.3 s with a grace period of 1 s, so what
would take an hour in production is seen here within seconds."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_dev.infra import free_port
from imgpipe_dev.s3local import LocalS3, s3_env
from tests.conftest import Namespace, new_namespace, serving
from tests.e2e.conftest import RunningStack, eventually, stack_running
from tests.e2e.test_cli import cli_env, in_pipe
from tests.s3 import keys_in, new_bucket

ALPHA = "alpha-deletion-key-0123456789abcdef"
BETA = "beta-deletion-key-0123456789abcdefg"
GRACE, INTERVAL = 1.0, 0.3


@dataclass
class Origin:
    """Photos made from their names (distinct names, distinct bytes); `/nostore/...` answers
    forbid reuse; `/held/...` answers only once `release` is set."""

    base_url: str
    release: asyncio.Event = field(default_factory=asyncio.Event)


def photo(name: str) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    image = Image.new("RGB", (48, 32), tuple(seed[:3]))
    image.putpixel((seed[3] % 48, seed[4] % 32), tuple(seed[5:8]))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
async def origin() -> AsyncIterator[Origin]:
    port = free_port()
    served = Origin(f"http://127.0.0.1:{port}")

    async def image(request: web.Request) -> web.Response:
        kind, name = request.match_info["kind"], request.match_info["name"]
        if kind == "held":
            await served.release.wait()
        headers = {"Cache-Control": "no-store"} if kind == "nostore" else {}
        return web.Response(body=photo(name), content_type="image/jpeg", headers=headers)

    app = web.Application()
    app.router.add_get("/{kind}/{name}", image)
    async with serving(app, port):
        yield served


@dataclass
class DeletionStack:
    running: RunningStack
    namespace: Namespace
    bucket: str | None = None
    s3_url: str | None = None

    async def keys(self) -> list[str]:
        """Every file the store holds."""
        if self.bucket is not None and self.s3_url is not None:
            return await keys_in(self.s3_url, self.bucket)
        root = self.running.data_dir
        return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]

    def key_of(self, url: str) -> str:
        """The stored key a link points at (a signed /files link, or a presigned S3 one)."""
        path = urlsplit(url).path
        prefix = f"/{self.bucket}/" if self.bucket else "/files/"
        assert path.startswith(prefix), url
        return path.removeprefix(prefix)


@pytest.fixture(scope="module", params=["local", "s3"])
async def stack(
    request: pytest.FixtureRequest,
    rabbitmq_url: str,
    mongodb_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[DeletionStack]:
    """A stack per backend, each in a namespace (and database) of its own."""
    env = {
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTH_MODE": "required",
        "API_KEYS": f"alpha:{ALPHA},beta:{BETA}",
        "LINK_SECRET": "a-deletion-test-link-secret-0123",
        "COLLECT_INTERVAL": str(INTERVAL),
        "ORPHAN_GRACE": str(GRACE),
    }
    root = tmp_path_factory.mktemp(f"deletion-{request.param}")
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        if request.param == "local":
            with stack_running(ns, root, env) as running:
                yield DeletionStack(running, ns)
            return
        local_s3: LocalS3 = request.getfixturevalue("local_s3")
        bucket = await new_bucket(local_s3.url)
        # Processor and status with a data directory each: nothing may pass through a disk.
        dirs = {name: {"DATA_DIR": str(root / f"{name}-files")} for name in ("processor", "status")}
        with stack_running(ns, root, env | s3_env(local_s3.url, bucket), dirs) as running:
            yield DeletionStack(running, ns, bucket, local_s3.url)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def db(stack: DeletionStack) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.namespace.mongodb_url)
    yield client[stack.namespace.database]
    await client.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def upload(
    http: aiohttp.ClientSession, stack: DeletionStack, origin: Origin, paths: list[str]
) -> str:
    """One row per image, as tenant alpha; the request id."""
    rows = [f"{n},SKU{n},{origin.base_url}/{path}" for n, path in enumerate(paths, start=1)]
    form = aiohttp.FormData()
    text = "S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n"
    form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
    async with http.post(
        f"{stack.running.ingest_url}/upload/", data=form, headers=auth(ALPHA)
    ) as response:
        assert response.status == 202, await response.text()
        request_id: str = (await response.json())["request_id"]
    return request_id


async def completed(http: aiohttp.ClientSession, stack: DeletionStack, request_id: str) -> Any:
    url = f"{stack.running.status_url}/status/{request_id}"

    async def final() -> Any:
        async with http.get(url, headers=auth(ALPHA)) as response:
            body = await response.json()
        return body if body["status"] in ("Completed", "Failed") else None

    status = await eventually(final)
    assert status["status"] == "Completed" and status["progress"]["failed"] == 0  # type: ignore[index]
    return status


async def output_links(http: aiohttp.ClientSession, status: Any) -> list[str]:
    """The output CSV's link, then its image links in row order."""
    async with http.get(status["output_csv_url"]) as response:
        assert response.status == 200
        rows = list(csv.reader(io.StringIO(await response.text())))
    return [status["output_csv_url"], *(row[3] for row in rows[1:])]


async def answers(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        await response.read()
        return response.status


async def delete(
    http: aiohttp.ClientSession, stack: DeletionStack, request_id: str, key: str | None = ALPHA
) -> tuple[int, str]:
    url = f"{stack.running.status_url}/requests/{request_id}"
    async with http.delete(url, headers=auth(key) if key else {}) as response:
        return response.status, await response.text()


async def test_deleting_a_request_keeps_what_another_shares_and_the_collector_removes_the_rest(
    stack: DeletionStack, origin: Origin, http: aiohttp.ClientSession, db: Any
) -> None:
    paths_a = ["img/shared-1", "img/shared-2", "img/only-a", "nostore/n"]
    paths_b = ["img/shared-1", "img/shared-2", "nostore/n"]
    a = await upload(http, stack, origin, paths_a)
    links_a = await output_links(http, await completed(http, stack, a))
    b = await upload(http, stack, origin, paths_b)
    links_b = await output_links(http, await completed(http, stack, b))
    keys_a = [stack.key_of(link) for link in links_a]
    keys_b = [stack.key_of(link) for link in links_b]
    # B reused A's two shared images; each no-store image is its request's own.
    assert keys_b[1:3] == keys_a[1:3] and keys_a[1].startswith("images/shared/")
    assert keys_a[4].startswith(f"images/{a}/") and keys_b[3].startswith(f"images/{b}/")
    assert set(keys_a + keys_b) <= set(await stack.keys())

    assert await delete(http, stack, a) == (204, "")

    status_a = f"{stack.running.status_url}/status/{a}"
    async with http.get(status_a, headers=auth(ALPHA)) as response:
        assert response.status == 404
    assert (await delete(http, stack, a))[0] == 404

    # The image only A had goes once its grace period is over: the collector has run then.
    async def only_a_collected() -> bool:
        return keys_a[3] not in await stack.keys()

    await eventually(only_a_collected, within=30)
    assert [await answers(http, link) for link in links_b] == [200] * len(links_b)
    assert {keys_a[0], keys_a[4]} & set(await stack.keys()) == set()
    assert [await answers(http, link) for link in (links_a[0], links_a[4])] == [404, 404]

    assert await delete(http, stack, b) == (204, "")

    async def nothing_of_either_stored() -> bool:
        return not set(keys_a + keys_b) & set(await stack.keys())

    await eventually(nothing_of_either_stored, within=30)
    assert [k for k in await stack.keys() if a in k or b in k] == []
    both = {"$in": [a, b]}
    outputs = {"$in": [k.rsplit("/", 1)[1].removesuffix(".jpg") for k in keys_a[1:4]]}
    urls = {"$in": [f"{origin.base_url}/{path}" for path in paths_a]}
    left = {
        "requests": await db[documents.REQUESTS].count_documents({"_id": both}),
        "products": await db[documents.PRODUCTS].count_documents({"request_id": both}),
        "images": await db[documents.IMAGES].count_documents({"request_id": both}),
        "row_batches": await db[documents.ROW_BATCHES].count_documents({"request_id": both}),
        "outputs": await db[documents.OUTPUTS].count_documents({"_id": outputs}),
        "sources": await db[documents.SOURCES].count_documents(
            {"$or": [{"output_id": outputs}, {"url": urls}]}
        ),
    }
    assert left == dict.fromkeys(left, 0)


@pytest.mark.parametrize("stack", ["local"], indirect=True)
async def test_another_tenant_or_no_key_cannot_delete_a_request(
    stack: DeletionStack, origin: Origin, http: aiohttp.ClientSession
) -> None:
    request_id = await upload(http, stack, origin, ["img/tenant-1"])
    await completed(http, stack, request_id)

    status, body = await delete(http, stack, request_id, BETA)
    assert status == 404 and "no request with id" in body
    assert await delete(http, stack, "f" * 32, BETA) == (404, body.replace(request_id, "f" * 32))
    status, body = await delete(http, stack, request_id, None)
    assert status == 401 and "Authorization: Bearer" in body
    await completed(http, stack, request_id)  # still there for its owner

    assert await delete(http, stack, request_id) == (204, "")


@pytest.mark.parametrize("stack", ["local"], indirect=True)
async def test_a_request_still_in_progress_gets_409_and_can_be_deleted_once_final(
    stack: DeletionStack, origin: Origin, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    origin.release.clear()
    request_id = await upload(http, stack, origin, ["held/slow-1"])
    env = cli_env(stack.running) | {"IMGPIPE_API_KEY": ALPHA}
    try:
        status, body = await delete(http, stack, request_id)
        assert status == 409 and "Completed or Failed" in body and "Pending" in body
        refused = await asyncio.to_thread(in_pipe, ["delete", request_id], env)
        assert refused.returncode == 5, refused.stderr
        assert "Completed or Failed" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        origin.release.set()
    await completed(http, stack, request_id)

    deleted = await asyncio.to_thread(in_pipe, ["delete", request_id], env)
    assert (deleted.returncode, deleted.stdout) == (0, f"{request_id}: deleted\n"), deleted.stderr
    again = await asyncio.to_thread(in_pipe, ["delete", request_id], env)
    assert again.returncode == 1
    assert again.stderr == f"imgpipe: no such request: {request_id}\n"
