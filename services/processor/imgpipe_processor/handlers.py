"""Handling image jobs: fetch, recompress, store, announce the outcome; a batch job by job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import Any

from pymongo.errors import ConnectionFailure

from imgpipe_contracts.events import (
    ImageBatchRequested,
    ImageFailed,
    ImageProcessed,
    ImageRequested,
)
from imgpipe_processor import metrics
from imgpipe_processor.fetch import DownloadFailed
from imgpipe_processor.keys import InvalidRequestId, image_key
from imgpipe_processor.outcomes import Slots
from imgpipe_processor.reuse import Made
from imgpipe_processor.transform import ImageRejected
from imgpipe_runtime import tracing
from imgpipe_runtime.broker import Publisher
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.files import FileStore, StoreUnavailable
from imgpipe_runtime.retry import Reject, RetryLater, Unavailable

log = logging.getLogger(__name__)

# The job's image, stored: made now, or reused from earlier work (imgpipe_processor.reuse).
Make = Callable[[ImageRequested, str], Awaitable[Made]]
Working = AbstractAsyncContextManager[object]
HandleOne = Callable[[Delivery, Working], Awaitable[None]]
Defer = Callable[[ImageRequested, Exception, int], Awaitable[None]]


async def handle_image_jobs(
    delivery: Delivery,
    *,
    handle_one: HandleOne,
    defer: Defer,
    slots: Slots,
    per_batch: int,
    finished: Callable[[], None],
) -> None:
    """Handle an ImageBatchRequested job by job, or a single ImageRequested (a retry).

    A batch is done, and acked, once each of its images has an outcome or has been moved to
    a retry queue (or the DLQ) as a job of its own, so one slow or broken image never holds
    back or repeats the others. If such a move fails, the whole batch is retried: outcomes
    are idempotent. `slots` bounds the images being downloaded, recompressed or stored in
    this process (not those whose outcome waits for its message); `per_batch` the images one
    batch may have in a slot or waiting for one, so the slots' FIFO interleaves lanes.

    `finished()` is called once the last image of the message is done with its slot: the
    message is acked only after that image's outcome is confirmed, so the outcomes waiting to
    be sent should go now (OutcomeBatcher.send_soon), not when their wait is over.
    """
    event = delivery.event
    if isinstance(event, ImageRequested):
        await handle_one(delivery, _then(slots, finished))
        return
    if not isinstance(event, ImageBatchRequested):
        raise Reject(f"processor cannot handle {event.routing_key}")
    mine = asyncio.Semaphore(per_batch)
    jobs = list(event.jobs())
    unfinished = len(jobs)

    def one_finished() -> None:
        nonlocal unfinished
        unfinished -= 1
        if unfinished == 0:
            finished()

    async def one(job: ImageRequested) -> None:
        working = _then(_both(mine, slots), one_finished)
        try:
            await handle_one(Delivery(job, delivery.attempt, delivery.max_attempts), working)
        except Exception as exc:
            await defer(job, exc, delivery.attempt)

    results = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@asynccontextmanager
async def _both(first: Working, second: Working) -> AsyncIterator[None]:
    async with first, second:
        yield


@asynccontextmanager
async def _then(working: Working, after: Callable[[], None]) -> AsyncIterator[None]:
    """`working`, and `after()` once it is left (however)."""
    try:
        async with working:
            yield
    finally:
        after()


async def handle_image_requested(
    delivery: Delivery,
    working: Working | None = None,
    *,
    make: Make,
    files: FileStore,
    broker: Publisher,
) -> None:
    """Turn an ImageRequested into exactly one ImageProcessed or ImageFailed.

    Transient download failures raise, so the consumer retries the job later; on the last
    attempt they become an ImageFailed instead. Redelivery is harmless: the stored name is a
    function of the job (or of the source's bytes and the settings, for an output requests may
    share), so a repeat overwrites the same key with the same bytes.

    `working` is held while the image is downloaded, recompressed and stored (a slot of the
    processor's), not while its outcome waits to be published and confirmed.
    """
    job = delivery.event
    if not isinstance(job, ImageRequested):
        raise Reject(f"processor cannot handle {job.routing_key}")
    try:
        key = image_key(job.request_id, job.row_index, job.position, job.url)
    except InvalidRequestId as exc:
        raise Reject(str(exc)) from exc
    # One span per image, a child of its batch's consume span (in the upload's trace); its
    # end includes the wait for the confirm of the message that carries its outcome.
    with tracing.span("process image", **_span_attributes(job, delivery)):
        async with working or nullcontext():
            outcome = await _outcome_of(job, key, delivery, make, files)
        tracing.annotate(**{"imgpipe.outcome": getattr(outcome, "reason", "processed")})
        await broker.publish(outcome)
    # Counted once the event is confirmed, so the counters agree with what status records.
    if isinstance(outcome, ImageFailed):
        log.info("image %s failed: %s (%s)", job.image_id, outcome.reason, outcome.detail)
        metrics.IMAGES_FAILED.labels(outcome.reason).inc()
    else:
        metrics.IMAGES_PROCESSED.inc()
        metrics.BYTES_IN.inc(outcome.bytes_in)
        metrics.BYTES_OUT.inc(outcome.bytes_out)


async def _outcome_of(
    job: ImageRequested, key: str, delivery: Delivery, make: Make, files: FileStore
) -> ImageProcessed | ImageFailed:
    """Download, recompress and store the job's image; its outcome, to be published.
    (Its bytes are let go when this returns, before the outcome waits for its message.)"""
    # During a store outage the job waits before downloading: its image would have nowhere to go.
    with _outages_as_unavailable():
        await files.ready()
    try:
        # Stored before the event is published, so a consumer of ImageProcessed finds the
        # file; a failed write raises, and the job is retried (nothing is acked before the
        # file exists).
        with _outages_as_unavailable():
            made = await make(job, key)
    except DownloadFailed as exc:
        if exc.transient and not delivery.is_last_attempt:
            raise RetryLater(f"{exc.reason}: {exc.detail}", exc.retry_after) from exc
        return _failure(job, exc.reason, exc.detail, delivery.attempt)
    except ImageRejected as exc:
        return _failure(job, exc.reason, exc.detail, delivery.attempt)
    with _outages_as_unavailable():
        output_url = await files.url_for(made.key)
    return ImageProcessed(
        **_about(job),
        output_key=made.key,
        output_url=output_url,
        width=made.width,
        height=made.height,
        source_format=made.source_format,
        bytes_in=made.bytes_in,
        bytes_out=made.bytes_out,
        reused=made.reused,
    )


@contextmanager
def _outages_as_unavailable() -> Iterator[None]:
    """An unavailable store or database (the records of reuse) is waited for: it uses up no
    attempts, so it never turns into a failed image."""
    try:
        yield
    except StoreUnavailable as exc:
        raise Unavailable(f"file store unavailable: {exc}") from exc
    except ConnectionFailure as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc


def _failure(job: ImageRequested, reason: str, detail: str, attempts: int) -> ImageFailed:
    return ImageFailed(**_about(job), reason=reason, detail=detail, attempts=attempts)


def _span_attributes(job: ImageRequested, delivery: Delivery) -> dict[str, Any]:
    return {
        "imgpipe.request_id": job.request_id,
        "imgpipe.row": job.row_index + 1,
        "imgpipe.position": job.position,
        "imgpipe.attempt": delivery.attempt,
        "url.full": job.url,
    }


def _about(job: ImageRequested) -> dict[str, Any]:
    """The fields by which an outcome names its job's image."""
    return {
        "request_id": job.request_id,
        "row_index": job.row_index,
        "position": job.position,
        "input_url": job.url,
    }
