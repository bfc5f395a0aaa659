"""Prometheus metrics of every service, served at `GET /metrics` (the processor on METRICS_PORT).

One module so names and labels stay consistent; each process exports the whole set, so a
service shows the others' metrics at zero. Labels take only bounded values (queue names, status
codes, reason codes, outcomes), never request ids or URLs.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Downloads may take up to DOWNLOAD_TIMEOUT (30 s by default), webhooks up to WEBHOOK_TIMEOUT.
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

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

# ingest
UPLOADS_ACCEPTED = Counter("imgpipe_ingest_uploads_accepted", "Uploads answered 202.")
UPLOADS_REJECTED = Counter(
    "imgpipe_ingest_uploads_rejected", "Uploads answered with an error, by status.", ["status"]
)
IMAGES_QUEUED = Counter("imgpipe_ingest_images_queued", "Image jobs queued by accepted uploads.")

# processor
IMAGES_PROCESSED = Counter("imgpipe_processor_images_processed", "Images stored as JPEG.")
IMAGES_FAILED = Counter(
    "imgpipe_processor_images_failed", "Images recorded as failed, by reason.", ["reason"]
)
DOWNLOAD_SECONDS = Histogram(
    "imgpipe_processor_download_seconds",
    "Time to download a source image (every attempt, failed ones too).",
    buckets=_SECONDS,
)
PROCESSING_SECONDS = Histogram(
    "imgpipe_processor_processing_seconds",
    "Time to decode and re-encode an image, including any wait for a free worker process.",
    buckets=_SECONDS,
)
BYTES_IN = Counter("imgpipe_processor_bytes_in", "Source bytes of the images processed.")
BYTES_OUT = Counter("imgpipe_processor_bytes_out", "JPEG bytes written for the images processed.")

# notifier
WEBHOOK_ATTEMPTS = Counter(
    "imgpipe_notifier_webhook_attempts",
    "Webhook POSTs by outcome: delivered, retrying (another follows) or failed (the last).",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "imgpipe_notifier_webhook_duration_seconds", "Time of one webhook POST.", buckets=_SECONDS
)

# status
REQUESTS_COMPLETED = Counter(
    "imgpipe_status_requests_completed", "Requests finished, by final status.", ["status"]
)
