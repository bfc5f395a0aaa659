"""Running an HTTP service in the foreground, the same way for ingest, status and notifier."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from imgpipe_runtime import tracing
from imgpipe_runtime.logs import QuietPolls, configure_logging
from imgpipe_runtime.settings import ServiceSettings

PROBES = ("/healthz", "/metrics")


def serve_http(
    app: FastAPI,
    settings: ServiceSettings,
    service: str,
    port: int,
    quiet_paths: tuple[str, ...] = PROBES,
) -> None:
    """Log as `service`, trace if OTEL_EXPORTER_OTLP_ENDPOINT asks for it, then serve `app`
    until SIGINT or SIGTERM (uvicorn's own handlers). Successful GETs under `quiet_paths` leave
    no access-log line unless LOG_LEVEL=DEBUG. (The lifespan flushes the traces at the end.)"""
    configure_logging(settings.log_level, service, settings.log_format)
    tracing.start(service)
    tracing.instrument_app(app)
    logging.getLogger("uvicorn.access").addFilter(QuietPolls(quiet_paths))
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        # uvloop (a dependency of every service) when it is installed, asyncio's loop if not;
        # uvicorn's default, stated because the services count on it.
        loop="auto",
        # httptools (C) parses HTTP when it is installed, h11 (pure Python) if not: a
        # dependency of every HTTP service, as a poller's request costs a fraction of h11's CPU.
        http="auto",
        # Our logging configuration, not uvicorn's: one format for every line.
        log_config=None,
    )
