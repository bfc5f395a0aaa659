"""The status answer, rendered once and shared by every poller for a short while.

Polls of one request come in bursts (a dashboard, a CLI, several clients every 100 ms) while
the outcome consumer keeps the database busy on the same cores, where one round trip can cost
tens of milliseconds. So a rendered status is kept for `STATUS_CACHE_SECONDS`, and concurrent
misses of one request share a single read, and a busy request's entry is refreshed behind
the answers instead of in front of them. A completion or webhook result recorded by this
process `forget`s the entry at once; progress counters, and whatever another status
instance writes, show within the TTL (forgetting after every outcome batch would empty the
cache several times a second for the very request being polled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from imgpipe_contracts.events import FINAL_STATES, RequestState
from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.tracing import sampled_trace_id
from imgpipe_status.domain import visible_state
from imgpipe_status.repository import StatusRepository
from imgpipe_status.schemas import (
    FAILURES_SHOWN,
    FailureOut,
    ProgressOut,
    ReusedOut,
    StatusOut,
    WebhookOut,
)

# Entries live for a fraction of a second, so this bounds memory, not the hit rate.
MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Snapshot:
    """A request's status as the API shows it, with the tenant who may see it."""

    tenant: str | None
    state: RequestState
    body: str  # the StatusOut as JSON, serialised once for every poller

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def visible_to(self, tenant: str | None) -> bool:
        """The same rule as the database query `{"tenant": tenant}`: None (AUTH_MODE=off)
        sees every request, a tenant only its own."""
        return tenant is None or self.tenant == tenant


Loader = Callable[[str], Coroutine[Any, Any, Snapshot | None]]


class ProgressCache:
    """Snapshots by request id, fresh for `ttl` seconds (0: no cache, every call loads).

    For another `ttl` after that, a poll still answers at once with the entry it has, while
    one load refreshes it behind the answer (stale-while-revalidate): so pollers of a busy
    request never wait for the database, and what they see is at most about 2 x `ttl` old.
    """

    def __init__(
        self,
        load: Loader,
        ttl: float,
        *,
        maxsize: int = MAX_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._timer = timer
        self._entries: TTLCache[str, tuple[float, Snapshot]] = TTLCache(
            maxsize, 2 * ttl or 1, timer
        )
        self._loading: dict[str, asyncio.Task[Snapshot | None]] = {}

    async def snapshot(self, request_id: str, tenant: str | None) -> Snapshot | None:
        """The request's snapshot if `tenant` may see it; None for an unknown id and for
        another tenant's request alike, so that a cached entry reveals nothing either."""
        snapshot = await self._get(request_id)
        return snapshot if snapshot is not None and snapshot.visible_to(tenant) else None

    def forget(self, request_id: str) -> None:
        """Drop the entry after a write, so that the next call reads the change. A load
        already under way may predate the write: its result is not kept."""
        self._entries.pop(request_id, None)
        self._loading.pop(request_id, None)

    async def _get(self, request_id: str) -> Snapshot | None:
        if not self._ttl:
            return await self._load(request_id)
        entry = self._entries.get(request_id)
        if entry is not None:
            loaded_at, cached = entry
            if self._timer() - loaded_at >= self._ttl:
                self._loading_task(request_id)
            return cached
        # A shield: a poller who hangs up cancels only its wait, not the others' read.
        return await asyncio.shield(self._loading_task(request_id))

    def _loading_task(self, request_id: str) -> asyncio.Task[Snapshot | None]:
        """The load of `request_id` under way, or a new one."""
        task = self._loading.get(request_id)
        if task is None:
            task = asyncio.create_task(self._load(request_id))
            self._loading[request_id] = task
            task.add_done_callback(lambda done: self._settle(request_id, done))
        return task

    def _settle(self, request_id: str, task: asyncio.Task[Snapshot | None]) -> None:
        # Asking for the exception also marks it retrieved when no waiter is left.
        failed = task.cancelled() or task.exception() is not None
        if self._loading.get(request_id) is not task:
            return  # forgotten meanwhile
        del self._loading[request_id]
        # A missing request is not kept: it may be inserted any moment.
        if not failed and (snapshot := task.result()) is not None:
            self._entries[request_id] = (self._timer(), snapshot)


async def load_snapshot(
    request_id: str, *, repository: StatusRepository, files: FileStore
) -> Snapshot | None:
    """Read and render one request for the cache (whoever it belongs to)."""
    doc = await repository.get_request(request_id)
    if doc is None:
        return None
    status = await render(doc, repository, files)
    return Snapshot(doc.get("tenant"), status.status, status.model_dump_json())


async def render(doc: Document, repository: StatusRepository, files: FileStore) -> StatusOut:
    """A `requests` document as the API shows it, its links signed afresh."""
    failed = await repository.failures(doc["_id"], FAILURES_SHOWN) if doc["failed"] else []
    webhook = doc.get("webhook")
    if webhook:
        webhook["history"] = sorted(webhook.get("history", []), key=lambda a: a["attempt"])
    return StatusOut(
        request_id=doc["_id"],
        status=visible_state(doc["status"], doc["processed"], doc["failed"]),
        output_csv_path=doc.get("output_csv_path"),
        output_csv_url=await files.url_for(doc["output_csv_path"])
        if doc.get("output_csv_path")
        else None,
        progress=ProgressOut.of(doc),
        bytes_in=doc.get("bytes_in", 0),
        bytes_out=doc.get("bytes_out", 0),
        reused=ReusedOut.model_validate(doc.get("reused") or {}),
        bytes_not_downloaded=doc.get("bytes_not_downloaded", 0),
        failures_by_reason=doc.get("failures_by_reason", {}),
        failures=[FailureOut.of(f) for f in failed],
        created_at=doc["created_at"],
        completed_at=doc.get("completed_at"),
        webhook=WebhookOut.model_validate(webhook) if webhook else None,
        error=doc.get("error"),
        trace_id=sampled_trace_id(doc.get("traceparent")),
    )
