from __future__ import annotations

from fastapi import APIRouter, HTTPException

from imgpipe_status.deps import RepositoryDep
from imgpipe_status.domain import visible_state
from imgpipe_status.schemas import (
    FAILURES_SHOWN,
    ErrorOut,
    FailureOut,
    ProgressOut,
    StatusOut,
    WebhookOut,
)

router = APIRouter()


@router.get(
    "/status/{request_id}",
    response_model=StatusOut,
    responses={404: {"model": ErrorOut, "description": "No request has this id."}},
    summary="Processing status of an upload",
)
async def get_status(request_id: str, repository: RepositoryDep) -> StatusOut:
    doc = await repository.get_request(request_id)
    if doc is None:
        raise HTTPException(404, f"no request with id {request_id!r}; check the id from /upload/")
    failed = await repository.failures(request_id, FAILURES_SHOWN) if doc["failed"] else []
    webhook = doc.get("webhook")
    if webhook:
        webhook["history"] = sorted(webhook.get("history", []), key=lambda a: a["attempt"])
    return StatusOut(
        request_id=doc["_id"],
        status=visible_state(doc["status"], doc["processed"], doc["failed"]),
        output_csv_path=doc.get("output_csv_path"),
        output_csv_url=doc.get("output_csv_url"),
        progress=ProgressOut(total=doc["total"], processed=doc["processed"], failed=doc["failed"]),
        bytes_in=doc.get("bytes_in", 0),
        bytes_out=doc.get("bytes_out", 0),
        failures_by_reason=doc.get("failures_by_reason", {}),
        failures=[
            FailureOut(
                row=f["row_index"] + 1,
                position=f["position"] + 1,
                url=f["input_url"],
                reason=f["reason"],
                detail=f["detail"],
            )
            for f in failed
        ],
        created_at=doc["created_at"],
        completed_at=doc.get("completed_at"),
        webhook=WebhookOut.model_validate(webhook) if webhook else None,
        error=doc.get("error"),
    )
