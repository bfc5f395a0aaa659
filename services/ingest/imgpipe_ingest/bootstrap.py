"""Builds the ingest service's adapters once and closes them on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository
from imgpipe_runtime.auth import Authenticator, KeyStore
from imgpipe_runtime.broker import Broker, running_broker
from imgpipe_runtime.health import Health, health_of
from imgpipe_runtime.mongo import Document, connected_database, ping


@dataclass(frozen=True)
class Ingest:
    """Everything the ingest service talks to."""

    db: AsyncDatabase[Document]
    repository: RequestRepository
    broker: Broker
    authenticator: Authenticator

    async def health(self) -> Health:
        return health_of(self.broker.is_connected, await ping(self.db))


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Ingest]:
    """Connect to the database and the broker; close both after."""
    async with (
        connected_database(settings) as db,
        running_broker(settings, "imgpipe-ingest") as broker,
    ):
        authenticator = Authenticator(KeyStore(db), settings.api_keys, settings.key_cache_seconds)
        yield Ingest(db, RequestRepository(db), broker, authenticator)
