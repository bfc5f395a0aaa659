"""HTTP response models of the status API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from imgpipe_contracts.events import RequestState


class ProgressOut(BaseModel):
    total: int
    processed: int
    failed: int


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
