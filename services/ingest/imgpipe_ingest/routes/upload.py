from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from imgpipe_ingest import metrics
from imgpipe_ingest.config import Settings
from imgpipe_ingest.csv_format import CsvRejected, Problem, ProductRow, parse_products
from imgpipe_ingest.deps import BearerKey, BrokerDep, RepositoryDep, SettingsDep
from imgpipe_ingest.repository import RequestRepository
from imgpipe_ingest.schemas import ErrorOut, ProblemOut, UploadAccepted, UploadRejected
from imgpipe_ingest.service import QueueingFailed, accept_upload, status_url, webhook_url_problem
from imgpipe_runtime import tracing

router = APIRouter()

# Seconds to suggest waiting when a tenant has too many images in flight.
IN_FLIGHT_RETRY_AFTER = 30

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "The body is not valid multipart/form-data."},
    401: {"model": ErrorOut, "description": "No valid API key (AUTH_MODE=required)."},
    413: {"model": ErrorOut, "description": "The upload is larger than MAX_UPLOAD_BYTES."},
    415: {"model": UploadRejected, "description": "The file is not UTF-8 CSV text."},
    422: {"model": UploadRejected, "description": "The CSV or a form field is invalid."},
    429: {
        "model": ErrorOut,
        "description": "A limit of the tenant is reached (uploads per minute, images in "
        "flight); Retry-After says when to try again.",
    },
    503: {"model": ErrorOut, "description": "The broker or database is unavailable."},
}


@router.post(
    "/upload/",
    status_code=202,
    response_model=UploadAccepted,
    responses=_RESPONSES,
    summary="Upload a CSV of products and image URLs",
)
@router.post("/upload", status_code=202, response_model=UploadAccepted, include_in_schema=False)
async def upload(
    request: Request,
    file: UploadFile,
    _key: BearerKey,
    settings: SettingsDep,
    repository: RepositoryDep,
    broker: BrokerDep,
    webhook_url: Annotated[str | None, Form()] = None,
) -> UploadAccepted | JSONResponse:
    """Validate the CSV, queue every image, and answer at once with the request id."""
    webhook_url = (webhook_url or "").strip() or None
    try:
        if webhook_url is not None:
            problem = webhook_url_problem(
                webhook_url,
                allow_private=settings.imgpipe_allow_private_networks,
                allowed_networks=settings.imgpipe_allowed_networks,
                max_length=settings.max_url_length,
            )
            if problem is not None:
                raise CsvRejected([Problem(None, f"webhook_url: {problem}")])
        with tracing.span("validate CSV"):
            rows = await run_in_threadpool(parse_products, file.file, settings.csv_limits())
            tracing.annotate(**{"imgpipe.rows": len(rows)})
    except CsvRejected as rejected:
        count = len(rejected.problems)
        body = UploadRejected(
            detail=f"the upload was rejected ({count} problem{'s' if count != 1 else ''}"
            f"{' shown' if rejected.truncated else ''}); fix it and upload again",
            problems=[ProblemOut(line=p.line, message=p.message) for p in rejected.problems],
            truncated=rejected.truncated,
        )
        return JSONResponse(body.model_dump(), status_code=rejected.status)
    tenant: str | None = getattr(request.state, "tenant", None)
    if tenant is not None:
        too_many = await _images_in_flight_problem(tenant, rows, settings, repository)
        if too_many is not None:
            return too_many
    try:
        request_id = await accept_upload(
            rows,
            webhook_url,
            repository=repository,
            broker=broker,
            public_base_url=settings.public_base_url,
            tenant=tenant,
        )
    except QueueingFailed as exc:
        return JSONResponse({"detail": f"{exc}; try again shortly"}, status_code=503)
    metrics.IMAGES_QUEUED.inc(sum(len(row.urls) for row in rows))
    return UploadAccepted(
        request_id=request_id, status_url=status_url(settings.public_base_url, request_id)
    )


async def _images_in_flight_problem(
    tenant: str, rows: list[ProductRow], settings: Settings, repository: RequestRepository
) -> JSONResponse | None:
    """429 when this upload would take the tenant over its images in flight, else None."""
    limit = settings.limits_of(tenant).images_in_flight
    images = sum(len(row.urls) for row in rows)
    in_flight = await repository.images_in_flight(tenant)
    if in_flight + images <= limit:
        return None
    return JSONResponse(
        {
            "detail": f"the limit of {limit} images in flight is reached ({in_flight} queued, "
            f"this upload brings {images}); try again when earlier uploads have finished"
        },
        status_code=429,
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER)},
    )
