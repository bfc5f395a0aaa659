"""The MongoDB schema shared by ingest (which records an accepted request) and status (which
aggregates its outcomes). Document shapes are described here once; both services build them
through these helpers.

- `requests`: one document per upload, `_id` = request id; counters `processed` / `failed`.
  `deleting_since` is set when its deletion begins (DELETE, or RETENTION_DAYS): from then on
  it is gone for readers, and whoever finds it so (a repeated DELETE, the collector) finishes
  removing its records, files and references; the document itself goes last.
- `row_batches`: the rows of one image batch as status received them (`_id` =
  `<request>:<first row, 7 digits>`); `rows_recorded` on the request counts their rows. A
  staging area: they become products when the request completes, and are removed then.
- `products`: the seed's table, one document per CSV row, `_id` = `<request>:<row, 7
  digits>`, inserted complete (inserts cost the database a fraction of updates): as soon as
  every image of the row has an outcome, where the status process that recorded the row also
  recorded those outcomes, and otherwise when the request completes (every product is in
  before the request is final); the `input_image_urls` / `output_image_urls` arrays keep the
  CSV's order (a failed image leaves `None` at its position and its reason at the same
  position of `errors`).
- `api_keys`: one document per API key (`_id` = key id): its tenant and a salted hash.
- `upload_windows`: uploads per tenant and minute (`_id` = `<tenant>:<minute>`), for the limit.
- `images`: one outcome fact per image, `_id` = `<request>:<row>:<position>`. Inserting it is
  how an outcome is counted, so a redelivered event hits the unique `_id` and counts nothing.
- `webhook_deliveries` (the notifier's): one document per webhook delivered, `_id` = webhook
  id (the completion's event id), so a completion met again is not called back again.
- `sources` (the processor's): one document per URL and reuse scope, `_id` = a hash of both:
  the last answer's validators and lifetime, the hash of its bytes and the output made of them.
  `source_leases`: one while a processor fetches a new source (others wait instead of fetching
  it too), ended by its time (a TTL index).
- `outputs`: one document per stored output that requests may share, `_id` = a hash of scope,
  source bytes and settings. `output_ref_pages`: which outputs a request's links point at, one
  document per request and write window of a processor (`request_id`, `outputs`: a list, at
  most 64), inserted by the processor before it looks at the output's state and before it
  announces the outcome; an output may appear in several of a request's pages (a redelivered
  job refers to it again). Deleting a request removes its
  references, and sets `released_at` on the outputs it was the last to refer to; the status
  service's collector claims an output whose `released_at` is older than a grace period
  (`state` "deleting", with `deleting_since` and the claiming `collector`), then looks for
  references, and gives it back if it finds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

REQUESTS = "requests"
PRODUCTS = "products"
ROW_BATCHES = "row_batches"
IMAGES = "images"
API_KEYS = "api_keys"
UPLOAD_WINDOWS = "upload_windows"
WEBHOOK_DELIVERIES = "webhook_deliveries"
SOURCES = "sources"
SOURCE_LEASES = "source_leases"
OUTPUTS = "outputs"
OUTPUT_REFS = "output_ref_pages"
DUPLICATE_KEY = 11000


def product_id(request_id: str, row_index: int) -> str:
    # Zero-padded, so the primary key orders a request's rows as in the file: the products
    # need no secondary index (which would cost SecantusDB about 3x per inserted row).
    return f"{request_id}:{row_index:07d}"


def products_of(request_id: str) -> dict[str, Any]:
    """A filter for a request's products or row batches, served by the `_id` index (";" sorts
    after ":")."""
    return {"_id": {"$gt": f"{request_id}:", "$lt": f"{request_id};"}}


def row_batch_document(request_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (`row_index`, `serial_number`, `product_name`, `urls`) of one batch, in file order."""
    return {
        "_id": product_id(request_id, rows[0]["row_index"]),
        "request_id": request_id,
        "rows": rows,
        "row_count": len(rows),
    }


def request_document(
    request_id: str,
    rows: int,
    total: int,
    webhook_url: str | None,
    now: datetime,
    tenant: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    return {
        "_id": request_id,
        "tenant": tenant,
        "status": "Pending",
        "rows": rows,
        "rows_recorded": 0,
        "total": total,
        "processed": 0,
        "failed": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "bytes_not_downloaded": 0,
        "reused": {},
        "failures_by_reason": {},
        "webhook_url": webhook_url,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
        "output_csv_path": None,
        "output_csv_url": None,
        # The upload's W3C trace context (tracing on): completion joins the upload's trace.
        "traceparent": traceparent,
    }


def product_document(
    request_id: str,
    row_index: int,
    serial_number: int,
    product_name: str,
    urls: list[str],
    outputs: list[str | None],
    errors: list[str | None],
) -> dict[str, Any]:
    """A finished product row: every image has its output URL or its error."""
    return {
        "_id": product_id(request_id, row_index),
        "request_id": request_id,
        "row_index": row_index,
        "serial_number": serial_number,
        "product_name": product_name,
        "input_image_urls": urls,
        "output_image_urls": outputs,
        "errors": errors,
        "processed": True,
    }


def api_key_document(
    key_id: str, tenant: str, salt: str, digest: str, now: datetime
) -> dict[str, Any]:
    """An API key as stored: never the key itself, only a salted hash of its secret."""
    return {
        "_id": key_id,
        "tenant": tenant,
        "salt": salt,
        "hash": digest,
        "created_at": now,
        "revoked_at": None,
    }


def webhook_delivery_document(
    webhook_id: str, request_id: str, url: str, attempts: int, status_code: int, now: datetime
) -> dict[str, Any]:
    return {
        "_id": webhook_id,
        "request_id": request_id,
        "url": url,
        "attempts": attempts,
        "status_code": status_code,
        "delivered_at": now,
    }


@dataclass(frozen=True)
class IndexSpec:
    """A secondary index that some query of the services needs."""

    collection: str
    keys: tuple[tuple[str, int], ...]
    name: str
    # A TTL index: the server deletes a document this many seconds after the indexed time.
    expire_after: int | None = None


INDEXES = (
    IndexSpec(
        IMAGES,
        (("request_id", 1), ("outcome", 1), ("row_index", 1), ("position", 1)),
        "request_outcomes_in_order",
    ),
    IndexSpec(REQUESTS, (("outbox_pending", 1),), "outbox_pending"),
    IndexSpec(REQUESTS, (("created_at", -1),), "newest_first"),
    IndexSpec(REQUESTS, (("tenant", 1), ("created_at", -1)), "tenant_newest_first"),
    IndexSpec(REQUESTS, (("tenant", 1), ("status", 1)), "tenant_by_status"),
    IndexSpec(REQUESTS, (("completed_at", 1),), "completed_first"),
    IndexSpec(REQUESTS, (("deleting_since", 1),), "requests_being_deleted"),
    IndexSpec(OUTPUT_REFS, (("outputs", 1),), "refs_by_output"),
    IndexSpec(OUTPUT_REFS, (("request_id", 1),), "refs_by_request"),
    IndexSpec(OUTPUTS, (("released_at", 1),), "outputs_released"),
    IndexSpec(SOURCES, (("output_id", 1),), "sources_by_output"),
    IndexSpec(SOURCE_LEASES, (("until", 1),), "leases_ended", expire_after=0),
)
