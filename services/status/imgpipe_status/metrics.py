"""The status service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS_COMPLETED = Counter(
    "imgpipe_status_requests_completed", "Requests finished, by final status.", ["status"]
)
