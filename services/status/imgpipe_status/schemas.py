"""HTTP response models of the status API.

The `examples` only document the OpenAPI spec (they match the README); they change no behaviour.
FastAPI drops every `null` from the spec it serves, so no example has `null` in a required field
(hence no `Pending` example: its `output_csv_path` and `output_csv_url` are null).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from imgpipe_contracts.events import RequestState

FAILURES_SHOWN = 100

_REQUEST_ID = "9c6c54e4a3f14dfb8bc8ba834d08b170"
_PROGRESS_EXAMPLE: JsonDict = {"total": 6, "processed": 5, "failed": 1}
_FAILURE_EXAMPLE: JsonDict = {
    "row": 3,
    "position": 2,
    "url": "http://localhost:8001/missing.jpg",
    "reason": "http_404",
    "detail": "the server answered 404 Not Found",
}
_ATTEMPT_FAILED_EXAMPLE: JsonDict = {
    "attempt": 1,
    "outcome": "failed",
    "status_code": 503,
    "reason": "http_503",
    "at": "2026-11-30T00:46:13.090000Z",
}
_ATTEMPT_DELIVERED_EXAMPLE: JsonDict = {
    "attempt": 2,
    "outcome": "delivered",
    "status_code": 200,
    "reason": None,
    "at": "2026-11-30T00:46:18.101000Z",
}
_WEBHOOK_EXAMPLE: JsonDict = {
    "status": "delivered",
    "url": "https://example.com/hooks/imgpipe",
    "webhook_id": "4be0a9d1c2f34e5b8a7c6d5e4f3a2b1c",
    "attempts": 2,
    "status_code": 200,
    "reason": None,
    "history": [_ATTEMPT_FAILED_EXAMPLE, _ATTEMPT_DELIVERED_EXAMPLE],
}
_COMPLETED_EXAMPLE: JsonDict = {
    "request_id": _REQUEST_ID,
    "status": "Completed",
    "output_csv_path": f"outputs/output_{_REQUEST_ID}.csv",
    "output_csv_url": f"http://localhost:8010/files/outputs/output_{_REQUEST_ID}.csv",
    "progress": _PROGRESS_EXAMPLE,
    "bytes_in": 608192,
    "bytes_out": 181533,
    "reused": {"not_modified": 3, "same_bytes": 0, "fresh": 1},
    "bytes_not_downloaded": 486553,
    "failures_by_reason": {"http_404": 1},
    "failures": [_FAILURE_EXAMPLE],
    "created_at": "2026-11-30T00:46:12.700000Z",
    "completed_at": "2026-11-30T00:46:13.077000Z",
    "webhook": _WEBHOOK_EXAMPLE,
    "error": None,
}


def not_found_message(request_id: str) -> str:
    return f"no request with id {request_id!r}; check the id from /upload/"


class ProgressOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PROGRESS_EXAMPLE]})

    total: int
    processed: int
    failed: int

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ProgressOut:
        """The counters of a `requests` document."""
        return cls(total=doc["total"], processed=doc["processed"], failed=doc["failed"])


class ReusedOut(BaseModel):
    """Processed images whose output came from earlier work, by how."""

    not_modified: int = Field(
        default=0, description="Revalidated with a conditional GET: the origin answered 304."
    )
    same_bytes: int = Field(
        default=0, description="Downloaded, but the bytes had been encoded before."
    )
    fresh: int = Field(
        default=0,
        description="No request to the origin: the same URL earlier in this request, or "
        "within the max-age the origin gave.",
    )


class PlacedImage(BaseModel):
    """An image named by where it sits in the uploaded file."""

    row: int = Field(description="1-based data row of the uploaded file")
    position: int = Field(description="1-based position of the URL in its row")

    @classmethod
    def of(cls, fact: Mapping[str, Any]) -> Self:
        """From an `images` fact (0-based `row_index` and `position`, `input_url`)."""
        place = {"row": fact["row_index"] + 1, "position": fact["position"] + 1}
        return cls.model_validate({**fact, **place, "url": fact["input_url"]})


class FailureOut(PlacedImage):
    model_config = ConfigDict(json_schema_extra={"examples": [_FAILURE_EXAMPLE]})

    url: str
    reason: str
    detail: str


class WebhookAttemptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [_ATTEMPT_FAILED_EXAMPLE, _ATTEMPT_DELIVERED_EXAMPLE]}
    )

    attempt: int
    outcome: str
    status_code: int | None = None
    reason: str | None = None
    at: datetime


class WebhookOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_WEBHOOK_EXAMPLE]})

    # An attempt's history can be stored a moment before its state: still retrying then.
    status: str = "retrying"
    url: str
    webhook_id: str
    attempts: int
    status_code: int | None = None
    reason: str | None = None
    history: list[WebhookAttemptOut] = []


class StatusOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_COMPLETED_EXAMPLE]})

    request_id: str
    status: RequestState
    output_csv_path: str | None
    output_csv_url: str | None
    progress: ProgressOut
    bytes_in: int = Field(description="Source bytes of the processed images")
    bytes_out: int = Field(description="Bytes of the recompressed images")
    reused: ReusedOut = Field(
        default_factory=ReusedOut, description="Processed images made from earlier work"
    )
    bytes_not_downloaded: int = Field(
        default=0, description="Source bytes not downloaded, thanks to reuse (fresh, not_modified)"
    )
    failures_by_reason: dict[str, int]
    failures: list[FailureOut] = Field(description=f"The first {FAILURES_SHOWN} failed images")
    created_at: datetime
    completed_at: datetime | None = None
    webhook: WebhookOut | None = None
    error: str | None = None
    trace_id: str | None = Field(
        default=None,
        description="The upload's OpenTelemetry trace id, when it was traced (sampled)",
    )


class ErrorOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": not_found_message(_REQUEST_ID)}]}
    )

    detail: str


class RequestSummaryOut(BaseModel):
    request_id: str
    status: RequestState
    progress: ProgressOut
    created_at: datetime


class ImageOut(PlacedImage):
    input_url: str
    output_url: str
    width: int
    height: int
    bytes_in: int
    bytes_out: int


# The 401 of every route when AUTH_MODE=required.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No valid API key (AUTH_MODE=required).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}
# The 404 every route that takes a request id documents (another tenant's request included).
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No request has this id."},
    **UNAUTHORIZED,
}
# What DELETE /requests/{id} answers besides 204.
DELETE_ANSWERS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": ErrorOut, "description": "The request is not finished yet."},
    503: {
        "model": ErrorOut,
        "description": "The database or the file store did not answer; another DELETE "
        "finishes what has begun (the collector does too).",
    },
}


def still_running_message(request_id: str, state: str) -> str:
    return (
        f"request {request_id!r} is {state}; delete it once it is Completed or Failed "
        "(GET /status/{request_id} shows when)"
    )
