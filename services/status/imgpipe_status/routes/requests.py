"""Requests as a collection: the newest ones, a request's processed images, and deleting one."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pymongo.errors import ConnectionFailure

from imgpipe_runtime.files import StoreError
from imgpipe_status.collector import delete_request
from imgpipe_status.deps import (
    FilesDep,
    OwnedRequestDep,
    ProgressCacheDep,
    RepositoryDep,
    RetentionDep,
    Tenant,
)
from imgpipe_status.domain import visible_state
from imgpipe_status.schemas import (
    DELETE_ANSWERS,
    NOT_FOUND,
    UNAUTHORIZED,
    ImageOut,
    ProgressOut,
    RequestSummaryOut,
    not_found_message,
    still_running_message,
)

log = logging.getLogger(__name__)
router = APIRouter()


@router.get(
    "/requests",
    response_model=list[RequestSummaryOut],
    responses=UNAUTHORIZED,
    summary="Recent requests",
)
async def recent_requests(
    repository: RepositoryDep, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[RequestSummaryOut]:
    """The newest requests first (the caller's own when AUTH_MODE=required), with progress."""
    return [
        RequestSummaryOut(
            request_id=doc["_id"],
            status=visible_state(doc["status"], doc["processed"], doc["failed"]),
            progress=ProgressOut.of(doc),
            created_at=doc["created_at"],
        )
        for doc in await repository.recent_requests(limit, tenant)
    ]


@router.get(
    "/status/{request_id}/images",
    response_model=list[ImageOut],
    responses=NOT_FOUND,
    summary="Processed images of a request, before and after",
)
async def processed_images(
    doc: OwnedRequestDep,
    repository: RepositoryDep,
    files: FilesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[ImageOut]:
    """The first processed images in file order, with their sizes before and after."""
    return [
        ImageOut.of(image | {"output_url": await files.url_for(image["output_key"])})
        for image in await repository.processed_images(doc["_id"], limit)
    ]


@router.delete(
    "/requests/{request_id}",
    status_code=204,
    response_class=Response,
    responses=DELETE_ANSWERS,
    summary="Delete a finished request",
)
async def delete_finished_request(
    request_id: str,
    retention: RetentionDep,
    files: FilesDep,
    progress_cache: ProgressCacheDep,
    tenant: Tenant,
) -> Response:
    """Remove a Completed or Failed request: its status, products, rows, image records, output
    CSV and the images stored for it alone. Images it shares with other requests stay, and
    their links keep working; one no other request refers to is removed by the collector
    after ORPHAN_GRACE. Another tenant's request gets 404, as an unknown id does."""
    try:
        started, doc = await delete_request(
            request_id,
            tenant,
            retention=retention,
            files=files,
            progress_cache=progress_cache,
        )
    except (ConnectionFailure, StoreError) as exc:
        log.warning("deleting request %s stopped midway: %s", request_id, exc)
        raise HTTPException(
            503,
            "the database or the file store did not answer; send DELETE again "
            "(a deletion that has begun goes on from where it stopped)",
        ) from exc
    if started == "not_found":
        raise HTTPException(404, not_found_message(request_id))
    if started == "not_final" and doc is not None:
        state = visible_state(doc["status"], doc.get("processed", 0), doc.get("failed", 0))
        raise HTTPException(409, still_running_message(request_id, state))
    return Response(status_code=204)
