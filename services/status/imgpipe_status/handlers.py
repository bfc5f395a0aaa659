"""Status handlers: aggregate outcomes, complete requests exactly once, relay completions."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from pymongo.errors import ConnectionFailure

from imgpipe_contracts.events import (
    FINAL_STATES,
    ImageBatchRequested,
    ImageFailed,
    ImageOutcomes,
    ImageProcessed,
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_runtime import tracing
from imgpipe_runtime.broker import Publisher
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.files import FileStore, StoreUnavailable
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.retry import Reject, Unavailable
from imgpipe_status import metrics
from imgpipe_status.assembly import Assembly
from imgpipe_status.domain import final_state, finished_products, output_csv_key, render_output_csv
from imgpipe_status.progress import ProgressCache
from imgpipe_status.records import fact_summary
from imgpipe_status.repository import Progress, Recorded, StatusRepository

log = logging.getLogger(__name__)


async def handle_image_outcomes(
    deliveries: Sequence[Delivery],
    *,
    repository: StatusRepository,
    broker: Publisher,
    files: FileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    """Record a batch of ImageOutcomes, insert the products of the rows they finish, and
    complete requests that are done."""
    outcomes: list[ImageProcessed | ImageFailed] = []
    for delivery in deliveries:
        if not isinstance(delivery.event, ImageOutcomes):
            raise Reject(f"status.image-outcome cannot handle {delivery.event.routing_key}")
        outcomes.extend(delivery.event.outcomes)
    now = datetime.now(UTC)
    with _dependency_errors_as_unavailable():
        # Counters alone change here: pollers see them when the cache entry expires
        # (STATUS_CACHE_SECONDS), so a busy request's batches never empty the cache.
        recorded = await repository.record_outcomes(outcomes, now)
        for progress in recorded.progress:
            if progress.status in FINAL_STATES:  # finished, here or by another process
                assembly.forget(progress.request_id)
        ready = {
            rid: assembly.add_facts(rid, total, [fact_summary(fact) for fact in facts])
            for (rid, total), facts in _new_in_progress(recorded).items()
        }
        await _insert_products(ready, repository, assembly)
        await _complete_ready(
            recorded.progress, repository, broker, files, progress_cache, assembly
        )


async def handle_image_batches(
    deliveries: Sequence[Delivery],
    *,
    repository: StatusRepository,
    broker: Publisher,
    files: FileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    """Keep the rows of ImageBatchRequested batches for their requests' products. The last
    rows of a request may arrive after its last outcome, so this completes requests too."""
    batches = [d.event for d in deliveries if isinstance(d.event, ImageBatchRequested)]
    if len(batches) != len(deliveries):
        raise Reject("status.image-batch-requested only takes image.requested.batch")
    with _dependency_errors_as_unavailable():
        recorded = await repository.record_rows(batches)
        for progress in recorded.progress:
            # Already final (a batch redelivered after completion, or an upload that failed
            # while being queued): its rows will never become products.
            if progress.status in FINAL_STATES:
                await repository.drop_rows(progress.request_id)
                assembly.forget(progress.request_id)
        ready = {
            rid: assembly.add_rows(rid, total, [row for batch in docs for row in batch["rows"]])
            for (rid, total), docs in _new_in_progress(recorded).items()
        }
        await _insert_products(ready, repository, assembly)
        await _complete_ready(
            recorded.progress, repository, broker, files, progress_cache, assembly
        )


def _new_in_progress(recorded: Recorded) -> dict[tuple[str, int], list[Document]]:
    """The newly inserted documents of requests still in progress, by request and its total
    of images."""
    pending = {p.request_id: p.total for p in recorded.progress if p.status == "Pending"}
    found: dict[tuple[str, int], list[Document]] = defaultdict(list)
    for doc in recorded.new:
        if (rid := doc["request_id"]) in pending:
            found[(rid, pending[rid])].append(doc)
    return found


async def _insert_products(
    ready: dict[str, list[Document]], repository: StatusRepository, assembly: Assembly
) -> None:
    """Insert the products of rows just finished (one write for the batch)."""
    products = [product for done in ready.values() for product in done]
    if not products:
        return
    await repository.add_products(products)
    for request_id, done in ready.items():
        assembly.mark_inserted(request_id, done)


async def _complete_ready(
    touched: list[Progress],
    repository: StatusRepository,
    broker: Publisher,
    files: FileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    for progress in touched:
        if progress.ready and progress.status == "Pending":
            await complete_request(
                progress,
                repository=repository,
                broker=broker,
                files=files,
                progress_cache=progress_cache,
                assembly=assembly,
            )


async def complete_request(
    progress: Progress,
    *,
    repository: StatusRepository,
    broker: Publisher,
    files: FileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    """Confirm from the facts that every image has an outcome, then finish the request once:
    the products not inserted yet go in, the output CSV is written, the request gets its
    final state.

    The products and the output CSV are there before the state changes (a client that sees
    Completed finds them). The final state and the completion event are stored together (an
    outbox): whoever wins the conditional update publishes; if it dies first, the relay does.
    """
    now = datetime.now(UTC)
    # One read of the facts both confirms the counters and gives the products their outputs;
    # none when this process inserted every one of them (they are the request's facts).
    outcomes = assembly.facts(progress.request_id, progress.total)
    if outcomes is None:
        outcomes = await repository.outcomes(progress.request_id)
    confirmed = await repository.recount(progress.request_id, now, outcomes)
    if confirmed is None or confirmed.status != "Pending":
        # Gone, or finished by another status process.
        assembly.forget(progress.request_id)
        return
    if not confirmed.ready:
        return
    request = await repository.get_request(progress.request_id)
    if request is None:
        return
    # The rest belongs to the upload's trace (whichever status process or batch gets here),
    # linked to the batch that found the request ready.
    with tracing.joined(
        request.get("traceparent"), "complete request", **{"imgpipe.request_id": request["_id"]}
    ):
        key = output_csv_key(confirmed.request_id)
        rows = await repository.rows_in_order(confirmed.request_id)
        # Building a large request's products and CSV is CPU work; keep it off the loop (it
        # serves the API too).
        with tracing.span("write output CSV", **{"imgpipe.rows": len(rows)}):
            products, csv_bytes = await asyncio.to_thread(
                _render, confirmed.request_id, rows, outcomes
            )
            await files.write(key, csv_bytes, "text/csv; charset=utf-8")
        inserted = assembly.inserted(confirmed.request_id)
        await repository.add_products([p for p in products if p["row_index"] not in inserted])
        event = RequestCompleted(
            request_id=confirmed.request_id,
            status=final_state(confirmed.processed, confirmed.failed),
            total=confirmed.total,
            processed=confirmed.processed,
            failed=confirmed.failed,
            output_csv_path=key,
            output_csv_url=await files.url_for(key),
            webhook_url=request.get("webhook_url"),
        )
        # The relay's grace period counts from the claim, not from when this work began: a slow
        # CSV or products write must not look like a claimer that died before publishing.
        now = datetime.now(UTC)
        claimed = await repository.claim_completion(
            confirmed.request_id,
            {
                "status": event.status,
                "completed_at": now,
                "updated_at": now,
                "output_csv_path": event.output_csv_path,
                "output_csv_url": event.output_csv_url,
                "completion_event": event.model_dump(mode="json"),
            },
        )
        # Lost or won, the request is final now; pollers here should see it at once.
        progress_cache.forget(confirmed.request_id)
        assembly.forget(confirmed.request_id)
        if not claimed:
            return
        # Only the winner of the conditional update counts: once per request.
        metrics.REQUESTS_COMPLETED.labels(event.status).inc()
        log.info(
            "request %s %s: %d processed, %d failed",
            event.request_id,
            event.status,
            event.processed,
            event.failed,
        )
        await _publish_completion(event, repository=repository, broker=broker)
        # The rows live on as products now. (Should this fail, they stay behind unused.)
        await repository.drop_rows(event.request_id)


def _render(
    request_id: str, rows: list[Document], outcomes: list[Document]
) -> tuple[list[Document], bytes]:
    products = finished_products(request_id, rows, outcomes)
    return products, render_output_csv(products).encode("utf-8")


async def _publish_completion(
    event: RequestCompleted, *, repository: StatusRepository, broker: Publisher
) -> None:
    try:
        await broker.publish(event)
    except Exception:
        log.exception("publishing completion of %s failed; the relay will retry", event.request_id)
        return
    await repository.mark_completion_published(event.request_id)


async def relay_pending_completions(
    *, repository: StatusRepository, broker: Publisher, grace: float
) -> int:
    """Publish completions whose claimer died before publishing; return how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace)
    pending = await repository.pending_completions(cutoff)
    for doc in pending:
        event = RequestCompleted.model_validate(doc["completion_event"])
        log.warning("relaying unpublished completion of %s", event.request_id)
        with tracing.joined(
            doc.get("traceparent"), "relay completion", **{"imgpipe.request_id": event.request_id}
        ):
            await _publish_completion(event, repository=repository, broker=broker)
    return len(pending)


async def handle_webhook_outcome(
    delivery: Delivery, *, repository: StatusRepository, progress_cache: ProgressCache
) -> None:
    """Show each webhook attempt and the final fate in the request's status."""
    event = delivery.event
    reason: str | None
    if isinstance(event, WebhookDelivered):
        state, reason = "delivered", None
    elif isinstance(event, WebhookAttemptFailed):
        state, reason = "retrying", event.reason
    elif isinstance(event, WebhookFailed):
        state, reason = "failed", event.reason
    else:
        raise Reject(f"status.webhook-outcome cannot handle {event.routing_key}")
    entry = {
        "attempt": event.attempts,
        "outcome": "delivered" if state == "delivered" else "failed",
        "status_code": event.status_code,
        "reason": reason,
        "at": event.occurred_at,
    }
    with _dependency_errors_as_unavailable():
        await repository.record_webhook_attempt(
            event.request_id, entry, state=state, url=event.url, webhook_id=event.webhook_id
        )
    progress_cache.forget(event.request_id)


@contextmanager
def _dependency_errors_as_unavailable() -> Iterator[None]:
    """While the database or the file store is unreachable, messages wait for it instead of
    using up retries (the output CSV is written before a request completes)."""
    try:
        yield
    except ConnectionFailure as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    except StoreUnavailable as exc:
        raise Unavailable(f"file store unavailable: {exc}") from exc
