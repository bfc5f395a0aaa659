"""A cap on request bodies, enforced while they stream in.

Starlette spools multipart uploads to disk with no total limit; this middleware answers 413 as
soon as the declared or the received size passes the cap, before the rest is stored.
"""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgpipe_ingest.errors import IngestError

_DRAIN_LIMIT = 8 * 1024 * 1024


class _TooLarge(IngestError):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A tenant's own cap, when UploadAccess set one; else MAX_UPLOAD_BYTES.
        max_bytes: int = scope.get("state", {}).get("max_upload_bytes", self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._reject(send, max_bytes)
            return
        received = 0
        exceeded = False
        started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded, body_done
            message = await receive()
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # The framework may turn our exception into its own error response; replace it.
            if exceeded:
                return
            started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if exceeded and not started:
            if not body_done:
                await self._discard_rest(receive)
            await self._reject(send, max_bytes)

    async def _discard_rest(self, receive: Receive) -> None:
        """Read (and drop) a bounded amount of what the client is still sending.

        A server that answers and closes while the client is still writing makes many clients
        fail with "connection reset" before they read the 413; a little draining lets them see
        why. Nothing is stored, and past the bound we close anyway.
        """
        budget = _DRAIN_LIMIT
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            budget -= len(message.get("body", b""))

    async def _reject(self, send: Send, max_bytes: int) -> None:
        body = json.dumps(
            {"detail": f"the upload is larger than {max_bytes} bytes; split the file"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
