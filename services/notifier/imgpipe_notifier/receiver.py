"""The seed's demo webhook receiver: keeps what it received, in memory, newest last."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class ReceivedWebhooks:
    def __init__(self, signer: Webhook, keep: int) -> None:
        self._signer = signer
        self._items: deque[dict[str, Any]] = deque(maxlen=keep)

    def record(self, body: bytes, payload: Any, headers: dict[str, str]) -> bool:
        """Store a received call; return whether its signature was valid."""
        try:
            self._signer.verify(body, headers, json_parse=False)
            valid = True
        except WebhookVerificationError:
            valid = False
        self._items.append(
            {
                "received_at": datetime.now(UTC).isoformat(),
                "webhook_id": headers.get("webhook-id"),
                "signature_valid": valid,
                "payload": payload,
            }
        )
        return valid

    def items(self) -> list[dict[str, Any]]:
        return list(self._items)
