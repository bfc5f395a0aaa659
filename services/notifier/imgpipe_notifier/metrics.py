"""The notifier service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from imgpipe_runtime.metrics import SECONDS_BUCKETS

WEBHOOK_ATTEMPTS = Counter(
    "imgpipe_notifier_webhook_attempts",
    "Webhook POSTs by outcome: delivered, retrying (another follows) or failed (the last).",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "imgpipe_notifier_webhook_duration_seconds",
    "Time of one webhook POST.",
    buckets=SECONDS_BUCKETS,
)
