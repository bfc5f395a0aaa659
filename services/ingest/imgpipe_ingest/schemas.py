"""HTTP request and response models (kept apart from the event contracts)."""

from __future__ import annotations

from pydantic import BaseModel


class UploadAccepted(BaseModel):
    request_id: str
    status_url: str


class ProblemOut(BaseModel):
    line: int | None
    message: str


class UploadRejected(BaseModel):
    detail: str
    problems: list[ProblemOut]
    truncated: bool = False


class ErrorOut(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    broker: bool
    database: bool
