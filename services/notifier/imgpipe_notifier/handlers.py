"""Turning a RequestCompleted into a webhook call, retried over the configured schedule."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from imgpipe_contracts.events import (
    RequestCompleted,
    WebhookAttempt,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_contracts.webhooks import WebhookPayload
from imgpipe_notifier import metrics
from imgpipe_notifier.delivery import Attempt
from imgpipe_runtime.broker import Publisher
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.retry import Reject

log = logging.getLogger(__name__)


class NotifierError(Exception):
    """Something went wrong delivering a webhook."""


class WebhookNotDelivered(NotifierError):
    """This attempt failed; the consumer schedules the next one."""


PostWebhook = Callable[[str, str, str], Awaitable[Attempt]]


async def handle_request_completed(
    delivery: Delivery,
    *,
    post: PostWebhook,
    broker: Publisher,
    default_url: str | None,
) -> None:
    """POST the callback (`post(url, webhook_id, body)`); the webhook-id is the completion's
    event id, the same on every attempt and on every redelivery, so receivers can drop
    duplicates. Each attempt's outcome is published for the status service."""
    event = delivery.event
    if not isinstance(event, RequestCompleted):
        raise Reject(f"notifier cannot handle {event.routing_key}")
    url = event.webhook_url or default_url
    if url is None:
        return
    with metrics.WEBHOOK_SECONDS.time():
        body = WebhookPayload.of(event).model_dump_json()
        attempt = await post(url, event.event_id, body)
    sent = WebhookAttempt(
        webhook_id=event.event_id,
        url=url,
        attempts=delivery.attempt,
        status_code=attempt.status_code,
    ).model_dump()
    if attempt.delivered:
        metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
        log.info("webhook for %s delivered to %s (%s)", event.request_id, url, attempt.status_code)
        await broker.publish(
            WebhookDelivered(
                request_id=event.request_id, **sent | {"status_code": attempt.status_code or 0}
            )
        )
        return
    if not attempt.final and not delivery.is_last_attempt:
        metrics.WEBHOOK_ATTEMPTS.labels("retrying").inc()
        await broker.publish(
            WebhookAttemptFailed(request_id=event.request_id, reason=attempt.reason, **sent)
        )
        raise WebhookNotDelivered(f"webhook to {url} failed: {attempt.reason}")
    metrics.WEBHOOK_ATTEMPTS.labels("failed").inc()
    log.warning("webhook for %s failed for good: %s", event.request_id, attempt.reason)
    await broker.publish(WebhookFailed(request_id=event.request_id, reason=attempt.reason, **sent))
