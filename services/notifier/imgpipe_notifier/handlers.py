"""Turning a RequestCompleted into a webhook call, retried over the configured schedule."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from pymongo.errors import PyMongoError

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
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.retry import Reject

log = logging.getLogger(__name__)


class NotifierError(Exception):
    """Something went wrong delivering a webhook."""


class WebhookNotDelivered(NotifierError):
    """This attempt failed; the consumer schedules the next one."""


PostWebhook = Callable[[str, str, str], Awaitable[Attempt]]


class Deliveries(Protocol):
    """The webhooks delivered so far (DeliveryRepository)."""

    async def delivered(self, webhook_id: str) -> Document | None: ...

    async def record(
        self, webhook_id: str, request_id: str, url: str, attempts: int, status_code: int
    ) -> None: ...


async def handle_request_completed(
    delivery: Delivery,
    *,
    post: PostWebhook,
    broker: Publisher,
    deliveries: Deliveries,
    default_url: str | None,
) -> None:
    """POST the callback (`post(url, webhook_id, body)`); the webhook-id is the completion's
    event id, the same on every attempt and on every redelivery, so receivers can drop
    duplicates. Each attempt's outcome is published for the status service.

    A delivered webhook is recorded before its message is acked: a completion met again (the
    broker lost the ack, or the status service's relay published it twice) is announced as
    delivered again, not sent again. The record is a safeguard, not a dependency: while the
    database is unreachable, webhooks still go out."""
    event = delivery.event
    if not isinstance(event, RequestCompleted):
        raise Reject(f"notifier cannot handle {event.routing_key}")
    url = event.webhook_url or default_url
    if url is None:
        return
    earlier = await _earlier_delivery(deliveries, event.event_id)
    if earlier is not None:
        log.info("webhook for %s was delivered before; not sent again", event.request_id)
        await broker.publish(
            WebhookDelivered(
                request_id=event.request_id,
                webhook_id=event.event_id,
                url=earlier["url"],
                attempts=earlier["attempts"],
                status_code=earlier["status_code"],
            )
        )
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
        try:
            await deliveries.record(
                event.event_id, event.request_id, url, delivery.attempt, attempt.status_code or 0
            )
        except PyMongoError as exc:
            log.warning("could not record the delivery of %s: %s", event.event_id, exc)
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


async def _earlier_delivery(deliveries: Deliveries, webhook_id: str) -> Document | None:
    try:
        return await deliveries.delivered(webhook_id)
    except PyMongoError as exc:
        log.warning("cannot tell whether %s was delivered before: %s", webhook_id, exc)
        return None
