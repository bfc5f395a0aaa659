from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from imgpipe_notifier.deps import ReceivedDep

router = APIRouter()


class WebhookAck(BaseModel):
    status: str


class ReceivedWebhook(BaseModel):
    received_at: str
    webhook_id: str | None
    signature_valid: bool
    payload: Any


@router.post(
    "/webhook/",
    response_model=WebhookAck,
    responses={422: {"description": "The body is not a JSON object."}},
    summary="Demo receiver for completion callbacks",
)
@router.post("/webhook", response_model=WebhookAck, include_in_schema=False)
async def receive_webhook(request: Request, received: ReceivedDep) -> WebhookAck | JSONResponse:
    body = await request.body()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return JSONResponse({"detail": "send a JSON object as the body"}, status_code=422)
    received.record(body, payload, {k.lower(): v for k, v in request.headers.items()})
    return WebhookAck(status="Webhook received")


@router.get("/webhook/", response_model=list[ReceivedWebhook], summary="Callbacks received")
async def list_webhooks(received: ReceivedDep) -> list[dict[str, Any]]:
    return received.items()
