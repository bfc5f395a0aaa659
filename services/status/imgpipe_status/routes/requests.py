from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imgpipe_status.deps import FilesDep, OwnedRequestDep, RepositoryDep, Tenant
from imgpipe_status.domain import visible_state
from imgpipe_status.schemas import (
    NOT_FOUND,
    UNAUTHORIZED,
    ImageOut,
    ProgressOut,
    RequestSummaryOut,
)

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
