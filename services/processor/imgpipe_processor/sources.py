"""The processor's records of what it fetched and made (`sources`, `outputs`, and which
requests refer to an output: `output_ref_pages`), in the database every processor shares: a
lease there (`source_leases`), not a lock in one process, keeps two processors (on any
machines) from fetching and encoding the same new source at once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from imgpipe_contracts import documents
from imgpipe_processor.batching import BatchedReader, BatchedWriter, PageWriter
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
    """Reads and writes gathered into bulk round trips (imgpipe_processor.batching), except
    the rare conditional ones whose single result matters.

    The common path only inserts: a database updates one document per transaction (a few
    tenths of a millisecond each) but inserts many in one. So a lease is a document of its
    own (`source_leases`, ended by its time: a TTL index removes it), the references of a
    request to outputs go in pages (`output_ref_pages`: one document per request and write
    window), a new source's record and a new output are inserted whole, and only a change to
    what is known updates."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sources = db[documents.SOURCES]
        self._leases = db[documents.SOURCE_LEASES]
        self._outputs = db[documents.OUTPUTS]
        self._read_sources = BatchedReader(self._sources)
        self._read_outputs = BatchedReader(self._outputs)
        self._write_sources = BatchedWriter(self._sources)
        self._write_leases = BatchedWriter(self._leases)
        self._write_outputs = BatchedWriter(self._outputs)
        self._write_refs = PageWriter(db[documents.OUTPUT_REFS], "request_id", "outputs")

    async def source(self, source: str) -> Document | None:
        return await self._read_sources.get(source)

    async def take_lease(self, source: str, now: datetime, until: datetime) -> Lease | None:
        """The right to fetch `source` until `until`, or None while someone else holds it.
        A holder that died loses it when its time is up."""
        token = uuid.uuid4().hex
        if await self._insert(self._write_leases, {"_id": source, "token": token, "until": until}):
            return Lease(source, token)
        result = await self._leases.update_one(
            {"_id": source, "until": {"$lte": now}}, {"$set": {"token": token, "until": until}}
        )
        return Lease(source, token) if result.modified_count == 1 else None

    async def record(self, source: str, known: Document | None, changes: Document) -> None:
        """Record what a fetch learnt of `source` (`known`: its record as read before). A new
        source's record is inserted whole; when two processors made it (a lease that ran
        out), the first word counts."""
        if known is not None:
            await self._write_sources.write(UpdateOne({"_id": source}, {"$set": changes}))
            return
        await self._insert(self._write_sources, {"_id": source, **changes})

    async def release(self, lease: Lease) -> None:
        """End a lease before its time (the fetch failed, or left nothing to reuse), so that
        the next job for the source need not wait for it. A lease whose fetch was recorded
        is left to run out: nobody takes a lease on a source with a record."""
        await self._leases.delete_one({"_id": lease.source, "token": lease.token})

    async def forget_source(self, source: str) -> None:
        """The origin no longer allows reuse (no-store, private): keep nothing of it."""
        await self._sources.delete_one({"_id": source})

    async def use_output(
        self, output: str, request_id: str, *, look_first: bool = False
    ) -> Document | None:
        """The ready output `output`, now referred to by `request_id`; None if there is none
        (never made, or being removed). The reference goes in before the output's state is
        read: a collector claims first and looks for references after, so either it sees
        ours and gives the output back, or we see its claim. `look_first` reads once before
        (bytes likely new: no reference is written for an output that does not exist)."""
        if look_first and await self._read_outputs.get(output) is None:
            return None
        await self._write_refs.add(request_id, output)
        doc = await self._read_outputs.get(output)
        return doc if doc is not None and doc.get("state") == READY else None

    async def add_output(
        self, output: str, about: Document, request_id: str, now: datetime
    ) -> None:
        """Record a stored output (after its file is written) as referred to by `request_id`.
        Raises OutputBeingRemoved if the collector is removing an earlier copy right now.

        The reference and the output go in together (one write window, not two): a new
        output is not released, so no collector looks at it; for one made before, the state
        is read only once the reference is in, as `use_output` does."""
        new = {"_id": output, **about, "state": READY, "created_at": now, "released_at": None}
        _, inserted = await asyncio.gather(
            self._write_refs.add(request_id, output), self._insert(self._write_outputs, new)
        )
        if inserted:
            return
        # Made before (the same bytes under another URL, or a race).
        earlier = await self._outputs.find_one({"_id": output}, {"state": 1})
        if earlier is not None and earlier.get("state") == DELETING:
            raise OutputBeingRemoved(f"output {output} is being removed")

    @staticmethod
    async def _insert(writer: BatchedWriter, doc: Document) -> bool:
        """Whether `doc` was inserted (False: its `_id` was there already)."""
        try:
            await writer.write(InsertOne(doc))
        except DuplicateKeyError:
            return False
        return True


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
