"""The processor's records of what it fetched and made (`sources`, `outputs`), in the database
every processor shares: a lease there, not a lock in one process, keeps two processors (on
any machines) from fetching and encoding the same new source at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from imgpipe_contracts import documents
from imgpipe_runtime.mongo import Document

READY = "ready"
DELETING = "deleting"


class OutputBeingRemoved(Exception):
    """The collector is removing this output right now; make the image again shortly."""


@dataclass(frozen=True)
class Lease:
    source: str
    token: str


class SourceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sources = db[documents.SOURCES]
        self._outputs = db[documents.OUTPUTS]

    async def source(self, source: str) -> Document | None:
        doc: Document | None = await self._sources.find_one({"_id": source})
        return doc

    async def take_lease(
        self, source: str, known: Document | None, now: datetime, until: datetime, about: Document
    ) -> Lease | None:
        """The right to fetch `source` until `until`, or None while someone else holds it.
        A holder that died loses it when its time is up."""
        token = uuid.uuid4().hex
        if known is None:
            try:
                await self._sources.insert_one(
                    {"_id": source, **about, "lease": token, "lease_until": until}
                )
            except DuplicateKeyError:
                return None
            return Lease(source, token)
        result = await self._sources.update_one(
            {
                "_id": source,
                "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
            },
            {"$set": {"lease": token, "lease_until": until}},
        )
        return Lease(source, token) if result.modified_count == 1 else None

    async def release(self, lease: Lease, changes: Document | None = None) -> None:
        """Give the lease back, recording what the fetch learnt (`changes`), if anything. A
        holder whose lease was taken over records nothing: the new holder's word counts."""
        update: Document = {"$set": {"lease": None, "lease_until": None}}
        if changes:
            update["$set"] |= changes
        await self._sources.update_one({"_id": lease.source, "lease": lease.token}, update)

    async def forget_source(self, source: str, lease: Lease) -> None:
        """The origin no longer allows reuse (no-store, private): keep nothing of it."""
        await self._sources.delete_one({"_id": source, "lease": lease.token})

    async def use_output(self, output: str, request_id: str, now: datetime) -> Document | None:
        """The ready output `output`, now referred to by `request_id`; None if there is none
        (never made, or being removed)."""
        doc: Document | None = await self._outputs.find_one_and_update(
            {"_id": output, "state": READY},
            {
                "$addToSet": {"refs": request_id},
                "$set": {"last_used_at": now, "released_at": None},
            },
            return_document=ReturnDocument.AFTER,
        )
        return doc

    async def add_output(
        self, output: str, about: Document, request_id: str, now: datetime
    ) -> None:
        """Record a stored output (after its file is written) as referred to by `request_id`.
        Raises OutputBeingRemoved if the collector is removing an earlier copy right now."""
        try:
            await self._outputs.update_one(
                {"_id": output, "state": {"$ne": DELETING}},
                {
                    "$setOnInsert": {**about, "state": READY, "created_at": now},
                    "$addToSet": {"refs": request_id},
                    "$set": {"last_used_at": now, "released_at": None},
                },
                upsert=True,
            )
        except DuplicateKeyError as exc:
            raise OutputBeingRemoved(f"output {output} is being removed") from exc


def output_about(
    scope: str, key: str, width: int, height: int, source_format: str, bytes_in: int, out: int
) -> dict[str, Any]:
    return {
        "scope": scope,
        "key": key,
        "width": width,
        "height": height,
        "source_format": source_format,
        "bytes_in": bytes_in,
        "bytes_out": out,
    }
