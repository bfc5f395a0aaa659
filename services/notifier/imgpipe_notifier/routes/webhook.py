from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from imgpipe_notifier.receiver import ReceivedWebhooks

router = APIRouter()


class WebhookAck(BaseModel):
    status: str


class ReceivedWebhook(BaseModel):
    received_at: str
    webhook_id: str | None
    signature_valid: bool
    payload: Any


def _received(request: Request) -> ReceivedWebhooks:
    received: ReceivedWebhooks = request.app.state.received
    return received


@router.post(
    "/webhook/",
    response_model=WebhookAck,
    responses={422: {"description": "The body is not a JSON object."}},
    summary="Demo receiver for completion callbacks",
)
@router.post("/webhook", response_model=WebhookAck, include_in_schema=False)
async def receive_webhook(request: Request) -> WebhookAck | JSONResponse:
    body = await request.body()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return JSONResponse({"detail": "send a JSON object as the body"}, status_code=422)
    _received(request).record(body, payload, {k.lower(): v for k, v in request.headers.items()})
    return WebhookAck(status="Webhook received")


@router.get("/webhook/", response_model=list[ReceivedWebhook], summary="Callbacks received")
async def list_webhooks(request: Request) -> list[dict[str, Any]]:
    return _received(request).items()
