"""Turning a RequestCompleted into a webhook call, retried over the configured schedule."""

from __future__ import annotations

import logging

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from imgpipe_contracts import metrics
from imgpipe_contracts.events import (
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_contracts.messaging import Broker, Delivery, Reject
from imgpipe_notifier.delivery import post_webhook

log = logging.getLogger(__name__)


class WebhookNotDelivered(Exception):
    """This attempt failed; the consumer schedules the next one."""


def callback_body(event: RequestCompleted) -> str:
    return orjson.dumps(
        {
            "type": event.routing_key,
            "request_id": event.request_id,
            "status": event.status,
            "output_csv_url": event.output_csv_url,
            "output_csv_path": event.output_csv_path,
            "total": event.total,
            "processed": event.processed,
            "failed": event.failed,
            "completed_at": event.occurred_at.isoformat(),
        }
    ).decode()


async def handle_request_completed(
    delivery: Delivery,
    *,
    session: aiohttp.ClientSession,
    signer: Webhook,
    broker: Broker,
    default_url: str | None,
) -> None:
    """POST the callback; the webhook-id is the completion's event id, the same on every
    attempt and on every redelivery, so receivers can drop duplicates."""
    event = delivery.event
    if not isinstance(event, RequestCompleted):
        raise Reject(f"notifier cannot handle {event.routing_key}")
    url = event.webhook_url or default_url
    if url is None:
        return
    with metrics.WEBHOOK_SECONDS.time():
        attempt = await post_webhook(session, signer, url, event.event_id, callback_body(event))
    if attempt.delivered:
        metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
        log.info("webhook for %s delivered to %s (%s)", event.request_id, url, attempt.status_code)
        await broker.publish(
            WebhookDelivered(
                request_id=event.request_id,
                webhook_id=event.event_id,
                url=url,
                attempts=delivery.attempt,
                status_code=attempt.status_code or 0,
            )
        )
        return
    if not attempt.final and not delivery.is_last_attempt:
        metrics.WEBHOOK_ATTEMPTS.labels("retrying").inc()
        await broker.publish(
            WebhookAttemptFailed(
                request_id=event.request_id,
                webhook_id=event.event_id,
                url=url,
                attempt=delivery.attempt,
                status_code=attempt.status_code,
                reason=attempt.reason,
            )
        )
        raise WebhookNotDelivered(f"webhook to {url} failed: {attempt.reason}")
    metrics.WEBHOOK_ATTEMPTS.labels("failed").inc()
    log.warning("webhook for %s failed for good: %s", event.request_id, attempt.reason)
    await broker.publish(
        WebhookFailed(
            request_id=event.request_id,
            webhook_id=event.event_id,
            url=url,
            attempts=delivery.attempt,
            status_code=attempt.status_code,
            reason=attempt.reason,
        )
    )
