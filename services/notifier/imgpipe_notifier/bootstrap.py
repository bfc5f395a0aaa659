"""Builds the notifier's adapters once, wires its consumer, closes them on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import aiohttp
from standardwebhooks.webhooks import Webhook

from imgpipe_contracts.topology import NOTIFIER_REQUEST_COMPLETED
from imgpipe_notifier.config import Settings
from imgpipe_notifier.delivery import post_webhook
from imgpipe_notifier.handlers import handle_request_completed
from imgpipe_notifier.repository import DeliveryRepository
from imgpipe_runtime.broker import Broker, running_broker
from imgpipe_runtime.health import Health, health_of
from imgpipe_runtime.http import guarded_session
from imgpipe_runtime.mongo import connected_database


@dataclass(frozen=True)
class Notifier:
    """Everything the notifier talks to."""

    broker: Broker
    session: aiohttp.ClientSession

    async def health(self) -> Health:
        return health_of(self.broker.is_connected)


@asynccontextmanager
async def bootstrap(settings: Settings, signer: Webhook) -> AsyncIterator[Notifier]:
    """Open the webhook session, the database and the broker link, consume completions;
    close after."""
    timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout)
    async with (
        guarded_session(settings, timeout=timeout, user_agent="imgpipe-webhooks/0.1") as session,
        connected_database(settings) as db,
        running_broker(settings, "imgpipe-notifier") as broker,
    ):
        await broker.consume(
            NOTIFIER_REQUEST_COMPLETED,
            partial(
                handle_request_completed,
                post=partial(post_webhook, session, signer),
                broker=broker,
                deliveries=DeliveryRepository(db),
                default_url=settings.default_webhook_url,
            ),
            prefetch=settings.prefetch,
        )
        yield Notifier(broker, session)
