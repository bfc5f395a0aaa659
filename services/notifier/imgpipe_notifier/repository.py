"""The notifier's memory of the webhooks it delivered (MongoDB `webhook_deliveries`)."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from imgpipe_contracts import documents
from imgpipe_runtime.mongo import Document


class DeliveryRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def delivered(self, webhook_id: str) -> Document | None:
        """The record of the webhook's delivery, if it was delivered."""
        doc: Document | None = await self._db[documents.WEBHOOK_DELIVERIES].find_one(
            {"_id": webhook_id}
        )
        return doc

    async def record(
        self, webhook_id: str, request_id: str, url: str, attempts: int, status_code: int
    ) -> None:
        """Remember a delivered webhook; the first record of it stays."""
        doc = documents.webhook_delivery_document(
            webhook_id, request_id, url, attempts, status_code, datetime.now(UTC)
        )
        try:
            await self._db[documents.WEBHOOK_DELIVERIES].insert_one(doc)
        except DuplicateKeyError:
            return
