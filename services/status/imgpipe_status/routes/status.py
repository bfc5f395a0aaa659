from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from imgpipe_contracts.events import FINAL_STATES
from imgpipe_runtime.files import FileStore
from imgpipe_runtime.mongo import Document
from imgpipe_status.deps import FilesDep, OwnedRequestDep, RepositoryDep, SettingsDep, Tenant
from imgpipe_status.domain import visible_state
from imgpipe_status.repository import StatusRepository
from imgpipe_status.schemas import (
    FAILURES_SHOWN,
    NOT_FOUND,
    FailureOut,
    ProgressOut,
    StatusOut,
    WebhookOut,
)

router = APIRouter()


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
        failures_by_reason=doc.get("failures_by_reason", {}),
        failures=[FailureOut.of(f) for f in failed],
        created_at=doc["created_at"],
        completed_at=doc.get("completed_at"),
        webhook=WebhookOut.model_validate(webhook) if webhook else None,
        error=doc.get("error"),
    )


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
