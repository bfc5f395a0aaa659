"""Handling one image job: fetch, recompress, store, announce the outcome."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from imgpipe_contracts import metrics
from imgpipe_contracts.events import ImageFailed, ImageProcessed, ImageRequested
from imgpipe_contracts.messaging import Broker, Delivery, Reject, RetryLater
from imgpipe_processor.fetch import DownloadFailed
from imgpipe_processor.pool import ImagePool
from imgpipe_processor.storage import InvalidKey, LocalStorage
from imgpipe_processor.transform import ImageRejected

log = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[bytes]]


async def handle_image_requested(
    delivery: Delivery,
    *,
    fetch: Fetch,
    pool: ImagePool,
    storage: LocalStorage,
    broker: Broker,
) -> None:
    """Turn an ImageRequested into exactly one ImageProcessed or ImageFailed.

    Transient download failures raise, so the consumer retries the job later; on the last
    attempt they become an ImageFailed instead. Redelivery is harmless: the stored name is a
    function of the job, so a repeat overwrites the same file with the same bytes.
    """
    job = delivery.event
    if not isinstance(job, ImageRequested):
        raise Reject(f"processor cannot handle {job.routing_key}")
    try:
        key = storage.image_key(job.request_id, job.row_index, job.position, job.url)
    except InvalidKey as exc:
        raise Reject(str(exc)) from exc
    try:
        with metrics.DOWNLOAD_SECONDS.time():
            data = await fetch(job.url)
        with metrics.PROCESSING_SECONDS.time():
            result = await pool.recompress(data, str(storage.path_for(key)))
    except DownloadFailed as exc:
        if exc.transient and not delivery.is_last_attempt:
            raise RetryLater(f"{exc.reason}: {exc.detail}", exc.retry_after) from exc
        await _publish_failure(broker, job, exc.reason, exc.detail, delivery.attempt)
        return
    except ImageRejected as exc:
        await _publish_failure(broker, job, exc.reason, exc.detail, delivery.attempt)
        return
    await broker.publish(
        ImageProcessed(
            request_id=job.request_id,
            row_index=job.row_index,
            position=job.position,
            input_url=job.url,
            output_key=key,
            output_url=storage.url_for(key),
            width=result.width,
            height=result.height,
            source_format=result.source_format,
            bytes_in=len(data),
            bytes_out=result.bytes_out,
        )
    )
    # Counted once the event is confirmed, so the counters agree with what status records.
    metrics.IMAGES_PROCESSED.inc()
    metrics.BYTES_IN.inc(len(data))
    metrics.BYTES_OUT.inc(result.bytes_out)


async def _publish_failure(
    broker: Broker, job: ImageRequested, reason: str, detail: str, attempts: int
) -> None:
    log.info("image %s failed: %s (%s)", job.image_id, reason, detail)
    await broker.publish(
        ImageFailed(
            request_id=job.request_id,
            row_index=job.row_index,
            position=job.position,
            input_url=job.url,
            reason=reason,
            detail=detail,
            attempts=attempts,
        )
    )
    metrics.IMAGES_FAILED.labels(reason).inc()
