"""The documents the status service writes, built from events (pure: no I/O)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageBatchRequested, ImageFailed, ImageProcessed
from imgpipe_runtime.mongo import Document

Outcome = ImageProcessed | ImageFailed


def outcome_document(event: Outcome, now: datetime) -> Document:
    doc: Document = {
        "_id": event.image_id,
        "request_id": event.request_id,
        "row_index": event.row_index,
        "position": event.position,
        "input_url": event.input_url,
        "event_id": event.event_id,
        "recorded_at": now,
    }
    if isinstance(event, ImageProcessed):
        doc |= {
            "outcome": "processed",
            "output_url": event.output_url,
            "output_key": event.output_key,
            "width": event.width,
            "height": event.height,
            "source_format": event.source_format,
            "bytes_in": event.bytes_in,
            "bytes_out": event.bytes_out,
            "reused": event.reused,
        }
    else:
        doc |= {
            "outcome": "failed",
            "reason": event.reason,
            "detail": event.detail,
            "attempts": event.attempts,
        }
    return doc


# What a request's counters, products and output CSV take from its outcome facts.
FACT_FIELDS = (
    "row_index",
    "position",
    "outcome",
    "output_url",
    "reason",
    "detail",
    "reused",
    "bytes_in",
    "bytes_out",
)


def fact_summary(fact: Document) -> Document:
    """The fields of a fact that its request's completion reads back (FACT_FIELDS)."""
    return {key: fact[key] for key in FACT_FIELDS if key in fact}


REASONS = "failures_by_reason"
REUSED = "reused"
# Reused without the body being downloaded: nothing came over the network but headers.
_NOT_DOWNLOADED = ("fresh", "not_modified")


def tally(fact: Document) -> Counter[str]:
    """What one new outcome fact adds to its request's counters."""
    if fact["outcome"] == "processed":
        counts = Counter(processed=1, bytes_in=fact["bytes_in"], bytes_out=fact["bytes_out"])
        if how := fact.get("reused"):
            counts[f"{REUSED}.{how}"] = 1
            if how in _NOT_DOWNLOADED:
                counts["bytes_not_downloaded"] = fact["bytes_in"]
        return counts
    # Reasons are our own short codes ([a-z0-9_]), safe as field names.
    return Counter({"failed": 1, f"{REASONS}.{fact['reason']}": 1})


def row_batch_document(batch: ImageBatchRequested) -> Document:
    return documents.row_batch_document(batch.request_id, [row.model_dump() for row in batch.rows])
