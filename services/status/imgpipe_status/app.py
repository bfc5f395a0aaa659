"""The status app factory: HTTP API, static files and the outcome consumer in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient

from imgpipe_contracts.messaging import Broker
from imgpipe_contracts.topology import STATUS_IMAGE_OUTCOME, STATUS_WEBHOOK_OUTCOME
from imgpipe_status.config import Settings
from imgpipe_status.handlers import (
    OutputFiles,
    handle_image_outcomes,
    handle_webhook_outcome,
    relay_pending_completions,
)
from imgpipe_status.repository import StatusRepository
from imgpipe_status.routes import dashboard, health, requests, status
from imgpipe_status.routes.dashboard import DASHBOARD_DIR

log = logging.getLogger(__name__)


async def _relay_forever(repository: StatusRepository, broker: Broker, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.outbox_interval)
        try:
            await relay_pending_completions(
                repository=repository, broker=broker, grace=settings.outbox_grace
            )
        except Exception:
            log.exception("completion relay failed; trying again in %ss", settings.outbox_interval)


def create_app(settings: Settings) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url,
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            tz_aware=True,
        )
        repository = StatusRepository(client, settings.mongodb_db)
        broker = Broker(settings, "imgpipe-status")
        files = OutputFiles(settings.data_dir, settings.public_base_url)
        relay: asyncio.Task[None] | None = None
        try:
            await repository.ensure_indexes()
            await broker.start()
            app.state.repository = repository
            app.state.broker = broker
            await broker.consume_batches(
                STATUS_IMAGE_OUTCOME,
                partial(handle_image_outcomes, repository=repository, broker=broker, files=files),
                batch_size=settings.batch_size,
                max_wait=settings.batch_wait,
            )
            await broker.consume(
                STATUS_WEBHOOK_OUTCOME,
                partial(handle_webhook_outcome, repository=repository),
                prefetch=settings.prefetch,
            )
            relay = asyncio.create_task(_relay_forever(repository, broker, settings))
            yield
        finally:
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            await broker.close()
            await client.close()

    app = FastAPI(
        title="imgpipe status",
        version="0.1.0",
        description="Processing status of uploads, output CSVs and processed images.",
        lifespan=lifespan,
    )
    app.state.events_interval = settings.events_interval
    app.state.ingest_public_url = settings.ingest_public_url
    app.include_router(status.router)
    app.include_router(requests.router)
    app.include_router(dashboard.router)
    app.include_router(health.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.mount("/files", StaticFiles(directory=settings.data_dir), name="files")
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    return app
