"""HTTP response models of the status API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from imgpipe_contracts.events import RequestState

FAILURES_SHOWN = 100


class ProgressOut(BaseModel):
    total: int
    processed: int
    failed: int


class FailureOut(BaseModel):
    row: int = Field(description="1-based data row of the uploaded file")
    position: int = Field(description="1-based position of the URL in its row")
    url: str
    reason: str
    detail: str


class WebhookAttemptOut(BaseModel):
    attempt: int
    outcome: str
    status_code: int | None = None
    reason: str | None = None
    at: datetime


class WebhookOut(BaseModel):
    status: str
    url: str
    webhook_id: str
    attempts: int
    status_code: int | None = None
    reason: str | None = None
    history: list[WebhookAttemptOut] = []


class StatusOut(BaseModel):
    request_id: str
    status: RequestState
    output_csv_path: str | None
    output_csv_url: str | None
    progress: ProgressOut
    bytes_in: int = Field(description="Bytes downloaded for the processed images")
    bytes_out: int = Field(description="Bytes of the recompressed images")
    failures_by_reason: dict[str, int]
    failures: list[FailureOut] = Field(description=f"The first {FAILURES_SHOWN} failed images")
    created_at: datetime
    completed_at: datetime | None = None
    webhook: WebhookOut | None = None
    error: str | None = None


class ErrorOut(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    broker: bool
    database: bool
