"""Who may upload, and how much: checked before the body is read.

With AUTH_MODE=required, an upload without a valid API key is answered 401 and one over the
tenant's uploads-per-minute limit 429, before a byte of it is stored; the tenant and its
upload size cap go in the ASGI scope's `state` for BodySizeLimit and the route. Images in
flight are checked by the route, once the CSV says how many it brings.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from imgpipe_runtime.auth import BAD_KEY, NO_KEY, bearer_token

UPLOAD_PATHS = ("/upload/", "/upload")


class UploadAccess:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        app_state = scope["app"].state
        settings = app_state.settings
        if not settings.auth_required or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = bearer_token(headers.get("authorization"))
        if token is None:
            await _answer(send, 401, NO_KEY)
            return
        tenant = await app_state.adapters.authenticator.tenant_for(token)
        if tenant is None:
            await _answer(send, 401, BAD_KEY)
            return
        limits = settings.limits_of(tenant)
        now = time.time()
        minute = int(now // 60)
        uploads = await app_state.adapters.repository.count_upload(tenant, minute)
        if uploads > limits.uploads_per_minute:
            retry_after = max(1, round((minute + 1) * 60 - now))
            await _answer(
                send,
                429,
                f"the limit of {limits.uploads_per_minute} uploads per minute is reached; "
                f"try again in {retry_after} s",
                retry_after=retry_after,
            )
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["tenant"] = tenant
        state["max_upload_bytes"] = limits.max_upload_bytes
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, detail: str, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
