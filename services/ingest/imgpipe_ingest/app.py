"""The ingest app factory: builds clients in the lifespan, mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient

from imgpipe_contracts.messaging import Broker
from imgpipe_ingest.body_limit import BodySizeLimit
from imgpipe_ingest.config import Settings
from imgpipe_ingest.repository import RequestRepository
from imgpipe_ingest.routes import health, upload
from imgpipe_ingest.schemas import ProblemOut, UploadRejected


async def form_rejected(request: Request, exc: Exception) -> JSONResponse:
    """Form errors in the same shape as CSV problems, so clients parse one error format."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        ProblemOut(
            line=None,
            message=f"{'.'.join(str(p) for p in error['loc'][1:]) or 'form'}: {error['msg']}",
        )
        for error in exc.errors()
    ]
    body = UploadRejected(
        detail="the form is incomplete or invalid; send the CSV as the multipart field 'file'",
        problems=problems,
    )
    return JSONResponse(body.model_dump(), status_code=422)


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
    app.add_exception_handler(RequestValidationError, form_rejected)
    app.include_router(upload.router)
    app.include_router(health.router)
    return app
