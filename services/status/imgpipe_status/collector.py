"""Deleting requests, and the collector: what DELETE /requests/{id} does, and the periodic
round that removes shared outputs nobody refers to any more, finishes deletions that were
interrupted, and expires requests older than RETENTION_DAYS.

A deletion marks the request first (`deleting_since`); from then on readers see it as gone.
Then, each step repeatable: its own files (the output CSV, images stored for it alone), its
references on shared outputs, its records, and the request document last. Whatever stops it
midway (a crash, a store outage) leaves the mark, and the next DELETE or collector round
finishes it. Shared outputs are never deleted with a request: another request's links may
point at them. The collector removes an output once nobody has referred to it for
ORPHAN_GRACE: it claims the output (see `RetentionRepository.claim_output`), deletes the
file, forgets the sources made into it, then the output's document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_status import metrics
from imgpipe_status.domain import output_csv_key
from imgpipe_status.progress import ProgressCache
from imgpipe_status.retention import RetentionRepository, Start

log = logging.getLogger(__name__)

# A deletion still marked after this long was interrupted (its DELETE takes seconds at most):
# the collector finishes it. Finishing one that is still under way would only repeat steps.
STALLED_DELETION = timedelta(seconds=60)
# Documents read per query; a round goes on while pages come back full.
PAGE = 200

DeletedBy = Literal["api", "retention", "collector"]


async def delete_request(
    request_id: str,
    owner: str | None,
    *,
    retention: RetentionRepository,
    files: FileStore,
    progress_cache: ProgressCache,
    by: DeletedBy = "api",
) -> tuple[Start, Document | None]:
    """Delete a final request of `owner`'s (any one's when None) with everything that is
    only its own. Returns what happened, and a request that is not final yet as it is."""
    started, doc = await retention.start_deleting(request_id, owner, datetime.now(UTC))
    if started != "started":
        return started, doc
    progress_cache.forget(request_id)
    await finish_deletion(request_id, retention=retention, files=files, by=by)
    # Again: a poll may have read the request before it was marked.
    progress_cache.forget(request_id)
    return started, None


async def finish_deletion(
    request_id: str, *, retention: RetentionRepository, files: FileStore, by: DeletedBy
) -> bool:
    """Remove what a request marked for deletion still has (nothing if it is gone already);
    True if this call removed its last record."""
    doc = await retention.being_deleted(request_id)
    if doc is None:
        return False
    # Files first, while the facts still name them.
    await files.delete([doc.get("output_csv_path") or output_csv_key(request_id)])
    async for keys in retention.own_image_keys(request_id):
        await files.delete(keys)
    await retention.release_outputs(request_id, datetime.now(UTC))
    await retention.drop_records(request_id, doc.get("rows", 0))
    if not await retention.forget_request(request_id):
        return False  # another process finished it meanwhile
    metrics.REQUESTS_DELETED.labels(by).inc()
    log.info("request %s deleted (%s)", request_id, by)
    return True


@dataclass(frozen=True)
class Collected:
    """What one collector round did."""

    deletions_finished: int = 0
    requests_expired: int = 0
    outputs_removed: int = 0


async def collect(
    *,
    retention: RetentionRepository,
    files: FileStore,
    progress_cache: ProgressCache,
    orphan_grace: float,
    retention_days: float = 0,
    now: datetime | None = None,
) -> Collected:
    """One round: finish interrupted deletions, expire old requests (with `retention_days`),
    then remove outputs unreferenced for `orphan_grace` seconds. Safe beside other rounds in
    other processes: every removal is claimed by a conditional write first."""
    now = now or datetime.now(UTC)
    finished = 0
    # Each page's requests leave the query as they are finished; a page met again means
    # someone else holds them (or they keep failing): the next round tries again.
    seen: set[str] = set()
    while stalled := await retention.stalled_deletions(now - STALLED_DELETION, PAGE):
        if seen.issuperset(stalled):
            break
        seen.update(stalled)
        for request_id in stalled:
            finished += await finish_deletion(
                request_id, retention=retention, files=files, by="collector"
            )
            progress_cache.forget(request_id)
    expired = 0
    if retention_days:
        cutoff = now - timedelta(days=retention_days)
        while old := await retention.expired_requests(cutoff, PAGE):
            if seen.issuperset(old):
                break
            seen.update(old)
            for request_id in old:
                started, _ = await delete_request(
                    request_id,
                    None,
                    retention=retention,
                    files=files,
                    progress_cache=progress_cache,
                    by="retention",
                )
                expired += started == "started"
    removed = await _remove_orphans(retention, files, now - timedelta(seconds=orphan_grace), now)
    return Collected(finished, expired, removed)


async def _remove_orphans(
    retention: RetentionRepository, files: FileStore, released_before: datetime, now: datetime
) -> int:
    removed = 0
    while True:
        page = await retention.releasable_outputs(released_before, PAGE)
        claimed: dict[str, str] = {}
        for output in page:
            # No token if referred to again, or if another collector is removing it.
            if token := await retention.claim_output(output["_id"], released_before, now):
                claimed[output["_id"]] = token
        # One request for the page's files (S3 takes up to 1,000 keys in one DeleteObjects).
        await files.delete([output["key"] for output in page if output["_id"] in claimed])
        for output_id, token in claimed.items():
            await retention.drop_output(output_id, token)
        metrics.OUTPUTS_COLLECTED.inc(len(claimed))
        removed += len(claimed)
        # A page of outputs other collectors hold would come back as it is: stop there.
        if len(page) < PAGE or not claimed:
            return removed
