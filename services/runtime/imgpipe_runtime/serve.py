"""Running an HTTP service in the foreground, the same way for ingest, status and notifier."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from imgpipe_runtime.logs import configure_logging
from imgpipe_runtime.settings import ServiceSettings


def serve_http(app: FastAPI, settings: ServiceSettings, service: str, port: int) -> None:
    """Log as `service`, then serve `app` until SIGINT or SIGTERM (uvicorn's own handlers)."""
    configure_logging(settings.log_level, service, settings.log_format)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        # uvloop (a dependency of every service) when it is installed, asyncio's loop if not;
        # uvicorn's default, stated because the services count on it.
        loop="auto",
        # Our logging configuration, not uvicorn's: one format for every line.
        log_config=None,
    )
