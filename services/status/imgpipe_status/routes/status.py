from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from imgpipe_contracts.events import FINAL_STATES
from imgpipe_status.deps import FilesDep, OwnedRequestDep, RepositoryDep, SettingsDep, Tenant
from imgpipe_status.progress import render
from imgpipe_status.schemas import NOT_FOUND, StatusOut

router = APIRouter()


@router.get(
    "/status/{request_id}",
    response_model=StatusOut,
    responses=NOT_FOUND,
    summary="Processing status of an upload",
)
async def get_status(doc: OwnedRequestDep, repository: RepositoryDep, files: FilesDep) -> StatusOut:
    return await render(doc, repository, files)


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
    doc: OwnedRequestDep,
    repository: RepositoryDep,
    files: FilesDep,
    settings: SettingsDep,
    tenant: Tenant,
) -> EventSourceResponse:
    """Each change of the status document as a `status` event, ending after the final one.

    Every connection starts with a fresh snapshot, so a client that reconnects (with or
    without Last-Event-ID) loses nothing: it sees the current state at once.
    """
    first = await render(doc, repository, files)
    interval = settings.events_interval

    async def events() -> AsyncIterator[ServerSentEvent]:
        current: StatusOut | None = first
        last: str | None = None
        sequence = 0
        while True:
            if current is None:
                now = await repository.get_request(request_id, tenant)
                if now is None:  # removed meanwhile: nothing more to follow
                    return
                current = await render(now, repository, files)
            body = current.model_dump_json()
            if body != last:
                sequence += 1
                last = body
                yield ServerSentEvent(data=body, event="status", id=str(sequence))
            if current.status in FINAL_STATES:
                return
            current = None
            await asyncio.sleep(interval)

    return EventSourceResponse(events(), ping=15)
