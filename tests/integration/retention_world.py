"""What the deletion and collector tests share: finished requests made by the real status
handlers, shared outputs recorded by the processor's own `SourceStore`, on a real database
and a real store (a local directory, or a bucket on moto's S3 server)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageProcessed
from imgpipe_dev.s3local import CREDENTIALS, LocalS3, s3_env
from imgpipe_processor.caching import SHARED_SCOPE, output_id, shared_key, source_id
from imgpipe_processor.sources import SourceStore, output_about
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.files import FileStore, LocalFileStore, open_file_store
from imgpipe_runtime.mongo import ensure_indexes
from imgpipe_runtime.settings import StorageSettings
from imgpipe_status.assembly import Assembly
from imgpipe_status.collector import Collected, collect
from imgpipe_status.handlers import handle_image_outcomes
from imgpipe_status.progress import ProgressCache, load_snapshot
from imgpipe_status.repository import StatusRepository
from imgpipe_status.retention import RetentionRepository
from tests.conftest import Namespace
from tests.integration.test_status_aggregation import accepted_request, deliveries, processed
from tests.s3 import keys_in, new_bucket

Mongo = AsyncMongoClient[dict[str, Any]]
JPEG = b"\xff\xd8\xff\xe0 stands in for a JPEG \xff\xd9"
# Collections that hold something of a request or of an output.
RECORDS = (
    documents.REQUESTS,
    documents.PRODUCTS,
    documents.ROW_BATCHES,
    documents.IMAGES,
    documents.OUTPUTS,
    documents.OUTPUT_REFS,
    documents.SOURCES,
)


@dataclass
class World:
    db: AsyncDatabase[dict[str, Any]]
    mongo: Mongo
    ns: Namespace
    broker: Broker
    files: FileStore
    repository: StatusRepository
    retention: RetentionRepository
    sources: SourceStore
    cache: ProgressCache
    stored: Any  # async () -> sorted keys in the store

    async def keys(self) -> list[str]:
        keys: list[str] = await self.stored()
        return sorted(keys)

    async def count(self, collection: str, query: dict[str, Any] | None = None) -> int:
        return await self.db[collection].count_documents(query or {})

    async def refs(self, output: str) -> list[str]:
        """The requests that refer to a shared output."""
        found = self.db[documents.OUTPUT_REFS].find({"outputs": output})
        return sorted({page["request_id"] async for page in found})

    def output(self, name: str) -> str:
        """The id of a shared output, as the processor names one made of bytes `name`."""
        return output_id(SHARED_SCOPE, hashlib.sha256(name.encode()).hexdigest(), "test")

    async def shared(self, name: str, request_id: str) -> str:
        """Store a shared output (made of `name`), referred to by `request_id`, as the
        processor does: its file, its `outputs` document, the source that made it."""
        oid = self.output(name)
        key = shared_key(oid)
        now = datetime.now(UTC)
        if await self.sources.use_output(oid, request_id) is None:
            await self.files.write(key, JPEG, "image/jpeg")
            about = output_about(SHARED_SCOPE, key, 10, 10, "JPEG", 100, len(JPEG))
            await self.sources.add_output(oid, about, request_id, now)
        source = source_id(SHARED_SCOPE, f"http://origin.test/{name}")
        about = {"scope": SHARED_SCOPE, "url": f"http://origin.test/{name}"}
        known = await self.sources.source(source)
        await self.sources.record(source, known, about | {"output_id": oid})
        return key

    async def finished(self, images: list[str], tenant: str | None = None) -> str:
        """A request with one row of images, completed by the status handlers: names
        starting with "own" are stored for the request alone, the others shared."""
        request_id = await accepted_request(self.mongo, self.ns, [len(images)])
        if tenant is not None:
            await self.db[documents.REQUESTS].update_one(
                {"_id": request_id}, {"$set": {"tenant": tenant}}
            )
        events = []
        for position, name in enumerate(images):
            if name.startswith("own"):
                key = f"images/{request_id}/000001-{position + 1:02d}-{name}.jpg"
                await self.files.write(key, JPEG, "image/jpeg")
            else:
                key = await self.shared(name, request_id)
            events.append(processed_as(request_id, position, key))
        await handle_image_outcomes(
            deliveries(*events),
            repository=self.repository,
            broker=self.broker,
            files=self.files,
            progress_cache=self.cache,
            assembly=Assembly(capacity=100),
        )
        request = await self.repository.get_request(request_id)
        assert request is not None and request["status"] == "Completed"
        return request_id

    async def collect(self, *, later: float = 0, grace: float = 3600, days: float = 0) -> Collected:
        """A collector round as if `later` seconds from now."""
        return await collect(
            retention=self.retention,
            files=self.files,
            progress_cache=self.cache,
            orphan_grace=grace,
            retention_days=days,
            now=datetime.now(UTC) + timedelta(seconds=later),
        )


def processed_as(request_id: str, position: int, key: str) -> ImageProcessed:
    return processed(request_id, 0, position).model_copy(
        update={"output_key": key, "output_url": f"http://status.test/files/{key}"}
    )


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[FileStore, Any]]:
    """Each backend, with a way to list every key it holds."""
    if request.param == "local":
        local = LocalFileStore(tmp_path, "http://status.test")

        async def local_keys() -> list[str]:
            return [str(p.relative_to(local.root)) for p in local.root.rglob("*") if p.is_file()]

        yield local, local_keys
        return
    server: LocalS3 = request.getfixturevalue("local_s3")
    bucket = await new_bucket(server.url)
    env = {k.lower(): v for k, v in s3_env(server.url, bucket).items() if k.startswith("S")}
    async with open_file_store(StorageSettings(**env)) as s3:  # type: ignore[arg-type]
        yield s3, partial(keys_in, server.url, bucket)


@pytest.fixture
async def world(ns: Namespace, mongo: Mongo, broker: Broker, store: tuple[FileStore, Any]) -> World:
    db = mongo[ns.database]
    await ensure_indexes(db)
    files, stored = store
    repository = StatusRepository(db)
    cache = ProgressCache(partial(load_snapshot, repository=repository, files=files), ttl=0)
    return World(
        db,
        mongo,
        ns,
        broker,
        files,
        repository,
        RetentionRepository(db),
        SourceStore(db),
        cache,
        stored,
    )
