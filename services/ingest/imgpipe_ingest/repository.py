"""Recording an accepted request in MongoDB (the only write ingest makes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_contracts import documents


class RequestRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def add_request(
        self,
        request_id: str,
        rows: int,
        images: int,
        webhook_url: str | None,
        now: datetime,
        tenant: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        doc = documents.request_document(
            request_id, rows, images, webhook_url, now, tenant, traceparent
        )
        await self._db[documents.REQUESTS].insert_one(doc)

    async def mark_failed(self, request_id: str, reason: str, now: datetime) -> None:
        await self._db[documents.REQUESTS].update_one(
            {"_id": request_id},
            {"$set": {"status": "Failed", "error": reason, "updated_at": now}},
        )

    async def images_in_flight(self, tenant: str) -> int:
        """Images of the tenant's unfinished requests that have no outcome yet."""
        cursor = self._db[documents.REQUESTS].find(
            {"tenant": tenant, "status": "Pending"}, {"total": 1, "processed": 1, "failed": 1}
        )
        waiting = 0
        async for doc in cursor:
            waiting += max(int(doc["total"]) - int(doc["processed"]) - int(doc["failed"]), 0)
        return waiting

    async def count_upload(self, tenant: str, minute: int) -> int:
        """Count one upload in the tenant's current minute; return the minute's count."""
        doc = await self._db[documents.UPLOAD_WINDOWS].find_one_and_update(
            {"_id": f"{tenant}:{minute}"},
            {"$inc": {"uploads": 1}, "$setOnInsert": {"tenant": tenant, "minute": minute}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["uploads"]) if doc else 1
