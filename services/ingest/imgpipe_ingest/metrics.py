"""The ingest service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter

UPLOADS_ACCEPTED = Counter("imgpipe_ingest_uploads_accepted", "Uploads answered 202.")
UPLOADS_REJECTED = Counter(
    "imgpipe_ingest_uploads_rejected", "Uploads answered with an error, by status.", ["status"]
)
IMAGES_QUEUED = Counter("imgpipe_ingest_images_queued", "Image jobs queued by accepted uploads.")
