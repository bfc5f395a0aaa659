"""The processor service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from imgpipe_runtime.metrics import SECONDS_BUCKETS

IMAGES_PROCESSED = Counter("imgpipe_processor_images_processed", "Images stored as JPEG.")
IMAGES_FAILED = Counter(
    "imgpipe_processor_images_failed", "Images recorded as failed, by reason.", ["reason"]
)
DOWNLOAD_SECONDS = Histogram(
    "imgpipe_processor_download_seconds",
    "Time to download a source image (every attempt, failed ones too).",
    buckets=SECONDS_BUCKETS,
)
PROCESSING_SECONDS = Histogram(
    "imgpipe_processor_processing_seconds",
    "Time to decode and re-encode an image, including any wait for a free worker process.",
    buckets=SECONDS_BUCKETS,
)
BYTES_IN = Counter("imgpipe_processor_bytes_in", "Source bytes of the images processed.")
BYTES_OUT = Counter("imgpipe_processor_bytes_out", "JPEG bytes written for the images processed.")

FULL_DOWNLOADS = Counter(
    "imgpipe_processor_full_downloads", "Source bodies downloaded (answers with a body)."
)
CONDITIONAL_REQUESTS = Counter(
    "imgpipe_processor_conditional_requests",
    "Requests that asked the origin whether a known source changed (If-None-Match / "
    "If-Modified-Since).",
)
REVALIDATIONS = Counter(
    "imgpipe_processor_revalidations",
    "Answers to conditional requests: not_modified (304) or modified (a new body).",
    ["answer"],
)
ENCODES = Counter("imgpipe_processor_encodes", "Images decoded and encoded (not reused).")
REUSED = Counter(
    "imgpipe_processor_reused",
    "Images whose output came from earlier work, by how: fresh (no request to the origin), "
    "not_modified (a 304), same_bytes (downloaded bytes already known).",
    ["how"],
)
