"""The processor service's Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from imgpipe_runtime.metrics import SECONDS_BUCKETS

IMAGES_PROCESSED = Counter("imgpipe_processor_images_processed", "Images stored as JPEG.")
IMAGES_FAILED = Counter(
    "imgpipe_processor_images_failed", "Images recorded as failed, by reason.", ["reason"]
)
DOWNLOAD_SECONDS = Histogram(
    "imgpipe_processor_download_seconds",
    "Time to download a source image (every attempt, failed ones too), including any wait "
    "for a place under its host's limit.",
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

# Per host (limiter.py). Host names come from user URLs, so only a bounded number of them get a
# label of their own (METRICS_HOSTS, the busy ones); every other host counts under "other".
OTHER_HOSTS = "other"
HOST_LIMIT = Gauge(
    "imgpipe_processor_host_download_limit",
    "The adaptive limit of downloads at once from a host (not kept for 'other').",
    ["host"],
)
HOST_IN_FLIGHT = Gauge(
    "imgpipe_processor_host_downloads_in_flight", "Downloads from a host running now.", ["host"]
)
HOST_WAITING = Gauge(
    "imgpipe_processor_host_downloads_waiting",
    "Downloads waiting for a place under their host's limit (or for its pause to end).",
    ["host"],
)
HOST_REFUSALS = Counter(
    "imgpipe_processor_host_refusals",
    "Downloads a host refused (http_429, http_503, http_504) or did not answer (timeout, "
    "connection).",
    ["host", "reason"],
)
HOST_LIMIT_CUTS = Counter(
    "imgpipe_processor_host_limit_cuts", "Times a host's limit was cut (or it paused us).", ["host"]
)
HOST_DOWNLOAD_SECONDS = Histogram(
    "imgpipe_processor_host_download_seconds",
    "Time of each answered download from a host, without any wait for a place.",
    ["host"],
    buckets=SECONDS_BUCKETS,
)
