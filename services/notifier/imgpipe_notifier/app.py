"""The notifier app factory: the completion consumer and the demo receiver in one process."""

from __future__ import annotations

from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from imgpipe_notifier.bootstrap import bootstrap
from imgpipe_notifier.config import Settings
from imgpipe_notifier.deps import adapters
from imgpipe_notifier.receiver import ReceivedWebhooks
from imgpipe_notifier.routes import webhook
from imgpipe_runtime.health import health_router
from imgpipe_runtime.metrics import metrics_router
from imgpipe_runtime.web import bootstrap_lifespan


def create_app(settings: Settings) -> FastAPI:
    signer = Webhook(settings.webhook_secret)

    app = FastAPI(
        title="imgpipe notifier",
        version="0.1.0",
        description="Signed completion webhooks, and a demo receiver at /webhook/.",
        lifespan=bootstrap_lifespan(lambda: bootstrap(settings, signer)),
    )
    app.state.received = ReceivedWebhooks(signer, settings.received_webhooks_kept)
    app.include_router(webhook.router)
    app.include_router(health_router(adapters))
    app.include_router(metrics_router())
    return app
