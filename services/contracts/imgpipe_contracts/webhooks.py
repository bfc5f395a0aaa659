"""The body of the completion webhook that the notifier POSTs to users (a public contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from imgpipe_contracts.events import RequestCompleted, RequestState


class WebhookPayload(BaseModel):
    """What a receiver gets, signed per Standard Webhooks; `webhook-id` is the event id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["request.completed"] = "request.completed"
    request_id: str
    status: RequestState
    output_csv_url: str
    output_csv_path: str
    total: int
    processed: int
    failed: int
    completed_at: datetime

    @classmethod
    def of(cls, event: RequestCompleted) -> WebhookPayload:
        # The event's other fields (webhook_url, event_id, ...) are not part of the payload.
        return cls.model_validate(event.model_dump() | {"completed_at": event.occurred_at})
