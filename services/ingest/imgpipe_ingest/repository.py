"""Recording an accepted request in MongoDB (the only write ingest makes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient

from imgpipe_contracts import store
from imgpipe_ingest.csv_format import ProductRow


class RequestRepository:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], db_name: str) -> None:
        self._client = client
        self._db = client[db_name]

    async def ping(self) -> bool:
        try:
            await self._client.admin.command("ping")
        except Exception:
            return False
        return True

    async def ensure_indexes(self) -> None:
        await store.ensure_indexes(self._db)

    async def add_request(
        self, request_id: str, rows: int, images: int, webhook_url: str | None, now: datetime
    ) -> None:
        doc = store.request_document(request_id, rows, images, webhook_url, now)
        await self._db[store.REQUESTS].insert_one(doc)

    async def add_products(
        self, request_id: str, first_row: int, rows: Sequence[ProductRow]
    ) -> None:
        await self._db[store.PRODUCTS].insert_many(
            [
                store.product_document(
                    request_id, first_row + i, r.serial_number, r.product_name, list(r.urls)
                )
                for i, r in enumerate(rows)
            ],
            ordered=False,
        )

    async def mark_failed(self, request_id: str, reason: str, now: datetime) -> None:
        await self._db[store.REQUESTS].update_one(
            {"_id": request_id},
            {"$set": {"status": "Failed", "error": reason, "updated_at": now}},
        )
