"""What the AsyncAPI document says that the code cannot: which service publishes what, one
example of each event, and the prose of its description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imgpipe_contracts.events import (
    SCHEMA_VERSION,
    Event,
    ImageBatchRequested,
    ImageFailed,
    ImageOutcomes,
    ImageProcessed,
    ImageRequested,
    ProductJobs,
    RequestAccepted,
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_contracts.topology import EVENTS_EXCHANGE
from imgpipe_runtime.retry import ATTEMPT_HEADER

# Which service publishes each routing key (one `send` operation each).
PUBLISHERS: dict[str, str] = {
    "request.accepted": "ingest",
    "image.requested.batch": "ingest",
    "image.requested": "processor",
    "image.outcomes": "processor",
    "request.completed": "status",
    "webhook.delivered": "notifier",
    "webhook.attempt_failed": "notifier",
    "webhook.failed": "notifier",
}

SERVICES: dict[str, str] = {
    "ingest": "Validates uploaded CSVs and queues their rows' images in batches.",
    "processor": "Downloads, recompresses and stores images; a failed job of a batch goes to "
    "the retry queues as a job of its own.",
    "status": "Records products, aggregates image outcomes, writes the output CSV, detects "
    "completion.",
    "notifier": "Delivers the signed completion webhook.",
}

_REQUEST = "9c6c54e4a3f14dfb8bc8ba834d08b170"
_COMPLETION = "4be0a9d1c2f34e5b8a7c6d5e4f3a2b1c"
_STATUS = "http://localhost:8010"
_HOOK = "https://example.com/hooks/imgpipe"


def _at(seconds: float) -> datetime:
    """A fixed moment `seconds` after the example upload (kept stable for a reproducible doc)."""
    return datetime(2026, 11, 30, 0, 46, 12, 700000, tzinfo=UTC) + timedelta(seconds=seconds)


_PROCESSED = ImageProcessed(
    event_id="2b3c4d5e6f7a48b9c0d1e2f3a4b5c6d7",
    occurred_at=_at(0.21),
    request_id=_REQUEST,
    row_index=0,
    position=1,
    input_url="https://shop.example/cat-side.jpg",
    output_key=f"images/{_REQUEST}/000001-02-cat-side.jpg",
    output_url=f"{_STATUS}/files/images/{_REQUEST}/000001-02-cat-side.jpg",
    width=1200,
    height=800,
    source_format="PNG",
    bytes_in=402113,
    bytes_out=98304,
)
_FAILED = ImageFailed(
    event_id="3c4d5e6f7a8b49c0d1e2f3a4b5c6d7e8",
    occurred_at=_at(0.25),
    request_id=_REQUEST,
    row_index=1,
    position=0,
    input_url="https://shop.example/fox.jpg",
    reason="http_404",
    detail="the server answered 404 Not Found",
    attempts=1,
)


# One realistic event per routing key (the README's example request); fixed ids and times keep
# the document reproducible. The tests validate their `to_json` bodies against the document.
EXAMPLES: dict[str, Event] = {
    "request.accepted": RequestAccepted(
        event_id="0f8e2a4c6b1d4e3f9a7b5c3d1e2f4a6b",
        occurred_at=_at(0),
        request_id=_REQUEST,
        rows=2,
        images=3,
        webhook_url=_HOOK,
        status_url=f"{_STATUS}/status/{_REQUEST}",
    ),
    "image.requested.batch": ImageBatchRequested(
        event_id="5d6e7f8a9b0c41d2e3f4a5b6c7d8e9f0",
        occurred_at=_at(0),
        request_id=_REQUEST,
        rows=[
            ProductJobs(
                row_index=0,
                serial_number=1,
                product_name="SKU1",
                urls=["https://shop.example/cat-front.jpg", "https://shop.example/cat-side.jpg"],
            ),
            ProductJobs(
                row_index=1,
                serial_number=2,
                product_name="SKU2",
                urls=["https://shop.example/mug.jpg"],
            ),
        ],
    ),
    "image.requested": ImageRequested(
        event_id="1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6",
        occurred_at=_at(0),
        request_id=_REQUEST,
        row_index=0,
        position=1,
        serial_number=1,
        product_name="SKU1",
        url="https://shop.example/cat-side.jpg",
    ),
    "image.outcomes": ImageOutcomes(
        event_id="3c4d5e6f7a8b49c0d1e2f3a4b5c6d7e9",
        occurred_at=_at(0.3),
        request_id=_REQUEST,
        processed=[_PROCESSED],
        failed=[_FAILED],
    ),
    "request.completed": RequestCompleted(
        event_id=_COMPLETION,
        occurred_at=_at(0.377),
        request_id=_REQUEST,
        status="Completed",
        total=3,
        processed=2,
        failed=1,
        output_csv_path=f"outputs/output_{_REQUEST}.csv",
        output_csv_url=f"{_STATUS}/files/outputs/output_{_REQUEST}.csv",
        webhook_url=_HOOK,
    ),
    "webhook.delivered": WebhookDelivered(
        event_id="5e6f7a8b9c0d41e2f3a4b5c6d7e8f9a0",
        occurred_at=_at(5.401),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempts=2,
        status_code=200,
    ),
    "webhook.attempt_failed": WebhookAttemptFailed(
        event_id="4d5e6f7a8b9c40d1e2f3a4b5c6d7e8f9",
        occurred_at=_at(0.39),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempts=1,
        status_code=503,
        reason="http_503",
    ),
    "webhook.failed": WebhookFailed(
        event_id="6f7a8b9c0d1e42f3a4b5c6d7e8f9a0b1",
        occurred_at=_at(63305.39),
        request_id=_REQUEST,
        webhook_id=_COMPLETION,
        url=_HOOK,
        attempts=7,
        status_code=None,
        reason="timeout",
    ),
}

DESCRIPTION = f"""\
Domain events of imgpipe. Every event is published to the durable topic exchange
`{EVENTS_EXCHANGE}` with its routing key (the channel address) as a persistent JSON message.
To subscribe, bind a queue of your own to the exchange with the routing keys you want
(`#` for all). `BROKER_PREFIX` prefixes the exchange name in a deployment that sets it.

Delivery guarantees:

- **At least once.** Publishers wait for the broker's confirm and retry across reconnects, and
  consumers ack only after their side effects are durable, so an event can arrive more than
  once. **Consumers must be idempotent**: deduplicate by `event_id` (also the AMQP
  `message_id`) or make the effect naturally repeatable.
- **No global order.** Events of one request can arrive in any order relative to each other
  (retries reorder them); use `occurred_at` and the event's own facts, not arrival order.
- **Ignore unknown fields.** Producers may add fields without notice; removing or changing one
  needs a new `schema_version` (now {SCHEMA_VERSION}).

Every body has `event_type` (the routing key), `event_id` (hex), `occurred_at` (ISO 8601, UTC),
`schema_version` and `request_id`. The AMQP properties are `message_id` = `event_id`,
`type` = the routing key, `content_type` = `application/json` and `delivery_mode` = 2
(persistent); the header `{ATTEMPT_HEADER}` is 1 on every published message.

This document is generated from the code by `python -m imgpipe_dev.asyncapi`; do not edit it.
"""
