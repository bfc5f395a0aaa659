"""The notifier app factory: the completion consumer and the demo receiver in one process."""

from __future__ import annotations

from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from imgpipe_notifier.bootstrap import bootstrap
from imgpipe_notifier.config import Settings
from imgpipe_notifier.receiver import ReceivedWebhooks
from imgpipe_notifier.routes import webhook
from imgpipe_runtime.web import service_app


def create_app(settings: Settings) -> FastAPI:
    signer = Webhook(settings.webhook_secret)

    app = service_app(
        "imgpipe notifier",
        "Signed completion webhooks, and a demo receiver at /webhook/.",
        settings,
        lambda: bootstrap(settings, signer),
    )
    app.state.received = ReceivedWebhooks(signer, settings.received_webhooks_kept)
    app.include_router(webhook.router)
    return app
