from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from imgpipe_status.deps import OwnedStatusDep, ProgressCacheDep, SettingsDep, Tenant
from imgpipe_status.progress import Snapshot
from imgpipe_status.schemas import NOT_FOUND, StatusOut

router = APIRouter()


@router.get(
    "/status/{request_id}",
    response_model=StatusOut,
    responses=NOT_FOUND,
    summary="Processing status of an upload",
)
async def get_status(snapshot: OwnedStatusDep) -> Response:
    # Already a StatusOut as JSON, serialised once for every poller.
    return Response(snapshot.body, media_type="application/json")


@router.get(
    "/status/{request_id}/events",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: `status` events carrying the status document "
            "each time it changes, the last one final.",
        },
        **NOT_FOUND,
    },
    response_class=EventSourceResponse,
    summary="Live progress of an upload (Server-Sent Events)",
)
async def stream_status(
    request_id: str,
    first: OwnedStatusDep,
    progress_cache: ProgressCacheDep,
    settings: SettingsDep,
    tenant: Tenant,
) -> EventSourceResponse:
    """Each change of the status document as a `status` event, ending after the final one.

    Every connection starts with a fresh snapshot, so a client that reconnects (with or
    without Last-Event-ID) loses nothing: it sees the current state at once.
    """
    interval = settings.events_interval

    async def events() -> AsyncIterator[ServerSentEvent]:
        current: Snapshot | None = first
        last: str | None = None
        sequence = 0
        while True:
            if current is None:
                current = await progress_cache.snapshot(request_id, tenant)
                if current is None:  # removed meanwhile: nothing more to follow
                    return
            if current.body != last:
                sequence += 1
                last = current.body
                yield ServerSentEvent(data=current.body, event="status", id=str(sequence))
            if current.final:
                return
            current = None
            await asyncio.sleep(interval)

    return EventSourceResponse(events(), ping=15)
