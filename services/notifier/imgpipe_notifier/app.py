"""The notifier app factory: the completion consumer and the demo receiver in one process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from standardwebhooks.webhooks import Webhook

from imgpipe_contracts.messaging import Broker
from imgpipe_contracts.netguard import socket_factory_for
from imgpipe_contracts.topology import NOTIFIER_REQUEST_COMPLETED
from imgpipe_notifier.config import Settings
from imgpipe_notifier.handlers import handle_request_completed
from imgpipe_notifier.receiver import ReceivedWebhooks
from imgpipe_notifier.routes import health, webhook


def create_app(settings: Settings) -> FastAPI:
    signer = Webhook(settings.webhook_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                socket_factory=socket_factory_for(
                    settings.imgpipe_allow_private_networks, settings.imgpipe_allowed_networks
                )
            ),
            timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout),
            headers={"User-Agent": "imgpipe-webhooks/0.1"},
            trust_env=False,
        )
        broker = Broker(settings, "imgpipe-notifier")
        app.state.broker = broker
        try:
            await broker.start()
            await broker.consume(
                NOTIFIER_REQUEST_COMPLETED,
                partial(
                    handle_request_completed,
                    session=session,
                    signer=signer,
                    broker=broker,
                    default_url=settings.default_webhook_url,
                ),
                prefetch=settings.prefetch,
            )
            yield
        finally:
            await broker.close()
            await session.close()

    app = FastAPI(
        title="imgpipe notifier",
        version="0.1.0",
        description="Signed completion webhooks, and a demo receiver at /webhook/.",
        lifespan=lifespan,
    )
    app.state.received = ReceivedWebhooks(signer, settings.received_webhooks_kept)
    app.include_router(webhook.router)
    app.include_router(health.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
