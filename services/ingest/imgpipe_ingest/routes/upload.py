from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from imgpipe_ingest import metrics
from imgpipe_ingest.csv_format import CsvRejected, Problem, parse_products
from imgpipe_ingest.deps import BrokerDep, RepositoryDep, SettingsDep
from imgpipe_ingest.schemas import ErrorOut, ProblemOut, UploadAccepted, UploadRejected
from imgpipe_ingest.service import QueueingFailed, accept_upload, status_url, webhook_url_problem

router = APIRouter()

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "The body is not valid multipart/form-data."},
    413: {"model": ErrorOut, "description": "The upload is larger than MAX_UPLOAD_BYTES."},
    415: {"model": UploadRejected, "description": "The file is not UTF-8 CSV text."},
    422: {"model": UploadRejected, "description": "The CSV or a form field is invalid."},
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
    file: UploadFile,
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
        rows = await run_in_threadpool(parse_products, file.file, settings.csv_limits())
    except CsvRejected as rejected:
        count = len(rejected.problems)
        body = UploadRejected(
            detail=f"the upload was rejected ({count} problem{'s' if count != 1 else ''}"
            f"{' shown' if rejected.truncated else ''}); fix it and upload again",
            problems=[ProblemOut(line=p.line, message=p.message) for p in rejected.problems],
            truncated=rejected.truncated,
        )
        return JSONResponse(body.model_dump(), status_code=rejected.status)
    try:
        request_id = await accept_upload(
            rows,
            webhook_url,
            repository=repository,
            broker=broker,
            public_base_url=settings.public_base_url,
        )
    except QueueingFailed as exc:
        return JSONResponse({"detail": f"{exc}; try again shortly"}, status_code=503)
    metrics.IMAGES_QUEUED.inc(sum(len(row.urls) for row in rows))
    return UploadAccepted(
        request_id=request_id, status_url=status_url(settings.public_base_url, request_id)
    )
