"""The ingest app factory: builds clients in the lifespan, mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from imgpipe_contracts.messaging import Broker
from pymongo import AsyncMongoClient

from imgpipe_ingest.body_limit import BodySizeLimit
from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository
from imgpipe_ingest.routes import health, upload


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url,
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            tz_aware=True,
        )
        repository = RequestRepository(client, settings.mongodb_db)
        broker = Broker(settings, "imgpipe-ingest")
        try:
            await repository.ensure_indexes()
            await broker.start()
            app.state.settings = settings
            app.state.repository = repository
            app.state.broker = broker
            yield
        finally:
            await broker.close()
            await client.close()

    app = FastAPI(
        title="imgpipe ingest",
        version="0.1.0",
        description="Upload a CSV of products and image URLs; get a request id at once.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.include_router(upload.router)
    app.include_router(health.router)
    return app
