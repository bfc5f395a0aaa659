"""Prometheus metrics that every consumer has, and the `/metrics` route.

Each service defines its own metrics in its own `metrics` module, so a process exports only
its own. Labels take only bounded values (queue names, status codes, reason codes, outcomes),
never request ids or URLs.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

# Downloads may take up to DOWNLOAD_TIMEOUT (30 s by default), webhooks up to WEBHOOK_TIMEOUT.
SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Every consumer (consumer.py), labelled with the work queue it reads.
MESSAGES_CONSUMED = Counter(
    "imgpipe_messages_consumed", "Messages delivered to a consumer.", ["queue"]
)
MESSAGES_REDELIVERED = Counter(
    "imgpipe_messages_redelivered",
    "Deliveries the broker flagged as redelivered (an earlier delivery was never acked).",
    ["queue"],
)
MESSAGES_RETRIED = Counter(
    "imgpipe_messages_retried", "Messages moved to a retry queue.", ["queue"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "imgpipe_messages_dead_lettered", "Messages moved to the dead-letter queue.", ["queue"]
)
HANDLER_ERRORS = Counter(
    "imgpipe_handler_errors", "Handler calls (a message or a batch) that raised.", ["queue"]
)

# Every service (tracing.py): 1 while spans are exported over OTLP.
TRACING_ENABLED = Gauge(
    "imgpipe_tracing_enabled", "1 when this process exports OpenTelemetry traces, else 0."
)


def metrics_router() -> APIRouter:
    """`GET /metrics` in Prometheus' text format (left out of the OpenAPI schema)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
