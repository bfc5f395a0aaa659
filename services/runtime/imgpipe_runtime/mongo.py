"""The MongoDB client every database-using service opens, and the indexes it makes sure of."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from imgpipe_contracts.documents import INDEXES
from imgpipe_runtime.settings import MongoSettings

Document = dict[str, Any]


@asynccontextmanager
async def connected_database(
    settings: MongoSettings, wait_seconds: float = 60.0
) -> AsyncIterator[AsyncDatabase[Document]]:
    """The service's database with its indexes made sure of; the client closes on the way out.
    Datetimes come back timezone-aware (UTC)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, serverSelectionTimeoutMS=settings.mongodb_timeout_ms, tz_aware=True
    )
    try:
        db = client[settings.mongodb_db]
        await ensure_indexes(db, wait_seconds)
        yield db
    finally:
        await client.close()


async def ensure_indexes(db: AsyncDatabase[Document], wait_seconds: float = 60.0) -> None:
    """Create every index a query of the services needs (waits for the server to answer)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(wait_seconds), wait=wait_exponential(max=5), reraise=True
    ):
        with attempt:
            for index in INDEXES:
                options: dict[str, Any] = {"name": index.name}
                if index.expire_after is not None:
                    options["expireAfterSeconds"] = index.expire_after
                await db[index.collection].create_index(list(index.keys), **options)


async def ping(db: AsyncDatabase[Document]) -> bool:
    """Whether the database answers (health checks)."""
    try:
        await db.command("ping")
    except Exception:
        return False
    return True
