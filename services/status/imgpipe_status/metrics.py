"""The status service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS_COMPLETED = Counter(
    "imgpipe_status_requests_completed", "Requests finished, by final status.", ["status"]
)
REQUESTS_DELETED = Counter(
    "imgpipe_status_requests_deleted",
    "Requests deleted, by what asked: `api` (DELETE), `retention` (RETENTION_DAYS), "
    "`collector` (a deletion interrupted earlier, finished).",
    ["by"],
)
OUTPUTS_COLLECTED = Counter(
    "imgpipe_status_outputs_collected",
    "Shared outputs removed by the collector once no request referred to them.",
)
