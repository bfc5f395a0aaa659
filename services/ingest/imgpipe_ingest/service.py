"""Accepting an upload: record it, queue every image, announce it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from imgpipe_contracts.events import ImageBatchRequested, ProductJobs, RequestAccepted
from imgpipe_contracts.topology import PROCESSOR_LANES, batch_routing_key
from imgpipe_ingest.csv_format import ProductRow, check_url
from imgpipe_ingest.errors import IngestError
from imgpipe_ingest.repository import RequestRepository
from imgpipe_runtime import tracing
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.logs import REQUEST_ID
from imgpipe_runtime.netguard import IPNetwork, is_allowed, literal_ip

log = logging.getLogger(__name__)


# Image jobs per message, and a cap on a message's URL text (a row may hold 50 long URLs).
BATCH_IMAGES = 50
BATCH_URL_CHARS = 256 * 1024


class QueueingFailed(IngestError):
    """The request could not be recorded or queued; nothing will be processed."""


def status_url(public_base_url: str, request_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/status/{request_id}"


def image_batches(
    request_id: str,
    rows: Sequence[ProductRow],
    max_images: int = BATCH_IMAGES,
    tenant: str | None = None,
) -> Iterator[ImageBatchRequested]:
    """Consecutive rows, whole, in batches of up to `max_images` images (a row with more
    images is a batch of its own)."""
    batch: list[ProductJobs] = []
    images = chars = 0
    for index, row in enumerate(rows):
        size = sum(len(url) for url in row.urls)
        if batch and (images + len(row.urls) > max_images or chars + size > BATCH_URL_CHARS):
            yield ImageBatchRequested(request_id=request_id, rows=batch, tenant=tenant)
            batch, images, chars = [], 0, 0
        batch.append(
            ProductJobs(
                row_index=index,
                serial_number=row.serial_number,
                product_name=row.product_name,
                urls=list(row.urls),
            )
        )
        images += len(row.urls)
        chars += size
    if batch:
        yield ImageBatchRequested(request_id=request_id, rows=batch, tenant=tenant)


async def accept_upload(
    rows: Sequence[ProductRow],
    webhook_url: str | None,
    *,
    repository: RequestRepository,
    broker: Broker,
    public_base_url: str,
    tenant: str | None = None,
) -> str:
    """Record the request and queue its images; return the new request id.

    Returns only once the broker has confirmed every message, so a 202 means the work is
    durably queued. The rows travel with their jobs: the status service records them as
    products, so the database sees one insert here, however large the file.
    """
    request_id = uuid.uuid4().hex
    REQUEST_ID.set(request_id)
    now = datetime.now(UTC)
    images = sum(len(r.urls) for r in rows)
    tracing.annotate(**{"imgpipe.request_id": request_id, "imgpipe.images": images})
    try:
        await repository.add_request(
            request_id, len(rows), images, webhook_url, now, tenant, tracing.traceparent()
        )
    except Exception as exc:
        raise QueueingFailed(f"the database did not accept the request: {exc}") from exc
    try:
        lane = await broker.least_busy(PROCESSOR_LANES)
        await broker.publish_many(
            image_batches(request_id, rows, tenant=tenant), routing_key=batch_routing_key(lane)
        )
        await broker.publish(
            RequestAccepted(
                request_id=request_id,
                rows=len(rows),
                images=images,
                webhook_url=webhook_url,
                status_url=status_url(public_base_url, request_id),
                tenant=tenant,
            )
        )
    except Exception as exc:
        log.exception("queueing request %s failed", request_id)
        await _mark_failed(repository, request_id, f"could not queue the images: {exc}", now)
        raise QueueingFailed(f"the work could not be recorded and queued: {exc}") from exc
    log.info("request %s accepted: %d rows, %d images", request_id, len(rows), images)
    return request_id


async def _mark_failed(
    repository: RequestRepository, request_id: str, reason: str, now: datetime
) -> None:
    """Best effort: the request may not exist, or the database may be the thing that failed."""
    try:
        await repository.mark_failed(request_id, reason, now)
    except Exception:
        log.exception("could not mark request %s as failed", request_id)


def webhook_url_problem(
    url: str,
    *,
    allow_private: bool,
    max_length: int,
    allowed_networks: Sequence[IPNetwork] = (),
) -> str | None:
    """Why `url` cannot be a webhook target, or None. Hostnames are checked again on connect."""
    problem = check_url(url, max_length)
    if problem is not None or allow_private:
        return problem
    host = urlsplit(url).hostname or ""
    ip = literal_ip(host)
    if ip is None and (host.lower() == "localhost" or host.lower().endswith(".localhost")):
        return "webhook_url points at this machine (localhost); use a public address"
    if ip is not None and not is_allowed(ip, allow_private, allowed_networks):
        return f"webhook_url points at the non-public address {ip}; use a public address"
    return None
