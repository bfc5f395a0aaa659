"""MongoDB access for deleting requests and collecting the outputs nobody refers to.

Every step is a conditional write that is safe to repeat, so a deletion interrupted anywhere
(a crash, a store outage) is finished by whoever meets it next: a repeated DELETE or the
collector. Two status processes doing the same work at once only repeat each other.

Every query here is served by an index (`_id`, `images.request_outcomes_in_order`,
`requests.completed_first`, `requests.requests_being_deleted`,
`output_ref_pages.refs_by_request`, `output_ref_pages.refs_by_output`,
`outputs.outputs_released`, `sources.sources_by_output`), but for the row batches' range of
`_id`s, which the completion uses too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

from pymongo import DeleteOne, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from imgpipe_contracts import documents
from imgpipe_contracts.events import FINAL_STATES
from imgpipe_runtime.mongo import Document

# A lower bound for every date range. MongoDB compares dates only with dates, so it changes
# no answer; SecantusDB's index scan for `$lt` alone walks every document whose field is
# null first (1.3 s against 2 ms over 20,000 outputs measured here).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Products go by their ids, known from the row count: SecantusDB scans the whole collection
# for a range of `_id`s, and its `delete_many` with `$in` grows with the square of the list
# (5,000 ids took 59 s here); one bulk write of single deletes stays at about 0.2 ms each.
IDS_PER_WRITE = 1000
# Pages of references read at once when one output's are looked at (a placeholder may have
# thousands), and when a request's are removed (each page names at most 64 outputs).
REFS_PAGE = 500
OWN_REF_PAGES = 16
KEYS_PER_DELETE = 1000
# The processor's states of a shared output (`imgpipe_processor.sources`).
READY, DELETING = "ready", "deleting"

Start = Literal["started", "not_found", "not_final"]


def _before(cutoff: datetime) -> Document:
    return {"$gte": EPOCH, "$lt": cutoff}


async def referring_requests(
    refs: AsyncCollection[Document], output_id: str
) -> AsyncIterator[list[str]]:
    """The requests that refer to a shared output, from REFS_PAGE pages of references at a
    time (a placeholder may have thousands); a request may come more than once."""
    after = ""
    query: Document = {"outputs": output_id}
    while (
        pages := await refs.find(query | {"_id": {"$gt": after}}, {"request_id": 1})
        .sort("_id", 1)
        .to_list(REFS_PAGE)
    ):
        yield list(dict.fromkeys(page["request_id"] for page in pages))
        after = pages[-1]["_id"]


class RetentionRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._requests = db[documents.REQUESTS]
        self._products = db[documents.PRODUCTS]
        self._row_batches = db[documents.ROW_BATCHES]
        self._images = db[documents.IMAGES]
        self._outputs = db[documents.OUTPUTS]
        self._refs = db[documents.OUTPUT_REFS]
        self._sources = db[documents.SOURCES]

    async def start_deleting(
        self, request_id: str, owner: str | None, now: datetime
    ) -> tuple[Start, Document | None]:
        """Mark a final request as being deleted (kept if it already was); with an `owner`,
        only that tenant's. Returns what happened and the request as it is now."""
        query: Document = {"_id": request_id}
        if owner is not None:
            query["tenant"] = owner
        doc: Document | None = await self._requests.find_one_and_update(
            query | {"status": {"$in": list(FINAL_STATES)}},
            {"$min": {"deleting_since": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return "started", doc
        doc = await self._requests.find_one(query)
        return ("not_found", None) if doc is None else ("not_final", doc)

    async def being_deleted(self, request_id: str) -> Document | None:
        """The request if its deletion has begun and is not finished."""
        doc: Document | None = await self._requests.find_one(
            {"_id": request_id, "deleting_since": {"$ne": None}}
        )
        return doc

    async def own_image_keys(self, request_id: str) -> AsyncIterator[list[str]]:
        """Keys of the images stored for this request alone (`images/<request>/...`: REUSE=off,
        or an origin that forbade reuse), a chunk at a time; shared outputs are not listed."""
        folder = f"images/{request_id}/"
        cursor = self._images.find(
            {"request_id": request_id, "outcome": "processed"}, {"output_key": 1, "_id": 0}
        )
        chunk: list[str] = []
        async for fact in cursor:
            key = fact.get("output_key") or ""
            if key.startswith(folder):
                chunk.append(key)
            if len(chunk) == KEYS_PER_DELETE:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def release_outputs(self, request_id: str, now: datetime) -> None:
        """Remove the request's references to shared outputs. An output no other request
        refers to gets `released_at` first (the collector counts its grace from then), so a
        crash in between leaves references that a repeat finds and finishes; one still
        shared keeps `released_at: None`, so the collector never has to look at it."""
        while pages := await self._refs.find({"request_id": request_id}, {"outputs": 1}).to_list(
            OWN_REF_PAGES
        ):
            outputs = sorted({output for page in pages for output in page["outputs"]})
            # The pages of other requests that name any of them list other outputs too.
            named = await self._refs.distinct(
                "outputs", {"outputs": {"$in": outputs}, "request_id": {"$ne": request_id}}
            )
            released = sorted(set(outputs) - set(named))
            if released:
                await self._outputs.update_many(
                    {"_id": {"$in": released}, "released_at": None},
                    {"$set": {"released_at": now}},
                )
            await self._refs.bulk_write([DeleteOne({"_id": page["_id"]}) for page in pages])

    async def drop_records(self, request_id: str, rows: int) -> None:
        """Remove the request's image facts, products and row batches (not the request)."""
        await self._images.delete_many({"request_id": request_id})
        for start in range(0, rows, IDS_PER_WRITE):
            end = min(rows, start + IDS_PER_WRITE)
            await self._products.bulk_write(
                [
                    DeleteOne({"_id": documents.product_id(request_id, row)})
                    for row in range(start, end)
                ],
                ordered=False,
            )
        # Normally none left (they go when the request completes); the collection holds only
        # the rows of requests in progress, so the range costs little.
        await self._row_batches.delete_many(documents.products_of(request_id))

    async def forget_request(self, request_id: str) -> bool:
        """Remove the request document itself, the last step; True if this call did."""
        result = await self._requests.delete_one(
            {"_id": request_id, "deleting_since": {"$ne": None}}
        )
        return result.deleted_count == 1

    async def stalled_deletions(self, started_before: datetime, limit: int) -> list[str]:
        """Requests whose deletion began before `started_before` and is not finished."""
        cursor = self._requests.find({"deleting_since": _before(started_before)}, {"_id": 1})
        return [doc["_id"] async for doc in cursor.limit(limit)]

    async def expired_requests(self, completed_before: datetime, limit: int) -> list[str]:
        """Final requests that completed before `completed_before` (RETENTION_DAYS)."""
        cursor = self._requests.find({"completed_at": _before(completed_before)}, {"_id": 1})
        return [doc["_id"] async for doc in cursor.limit(limit)]

    async def releasable_outputs(self, released_before: datetime, limit: int) -> list[Document]:
        """Outputs nobody has referred to since before `released_before`: those to remove,
        and those a collector that died left half removed."""
        cursor = self._outputs.find({"released_at": _before(released_before)}, {"key": 1})
        return [doc async for doc in cursor.limit(limit)]

    async def claim_output(self, output_id: str, released_before: datetime, now: datetime) -> str:
        """Mark a released output as being removed, for this caller alone; its token, or ""
        if it is referred to again, or claimed by a collector that is still at work.

        A processor inserts its reference before it reads the output's state, and uses only a
        `ready` output; here the claim comes before the look for references. So either the
        look finds the processor's reference (the output is given back) or the processor
        reads `deleting` (and makes its image anew): no link to a removed output is handed out.
        """
        token = uuid.uuid4().hex
        result = await self._outputs.update_one(
            {
                "_id": output_id,
                "released_at": _before(released_before),
                # A claim older than the grace period belongs to a collector that died.
                "$or": [
                    {"state": READY},
                    {"state": DELETING, "deleting_since": _before(released_before)},
                ],
            },
            {"$set": {"state": DELETING, "deleting_since": now, "collector": token}},
        )
        if result.modified_count == 0:
            return ""
        # Referred to by a request that still wants its links: given back. References of
        # requests being deleted keep nothing (their deletion removes them). One whose request
        # is not found counts: the status service may not have recorded it yet.
        async for requests in referring_requests(self._refs, output_id):
            dying = self._requests.find(
                {"_id": {"$in": requests}, "deleting_since": {"$ne": None}}, {"_id": 1}
            )
            if set(requests) - {doc["_id"] async for doc in dying}:
                await self._outputs.update_one(
                    {"_id": output_id, "collector": token},
                    {
                        "$set": {"state": READY, "released_at": None},
                        "$unset": {"deleting_since": "", "collector": ""},
                    },
                )
                return ""
        return token

    async def drop_output(self, output_id: str, token: str) -> None:
        """After its file is gone: forget the sources made into the output, then the output
        (last, so that a crash before leaves it claimed, to be finished later)."""
        await self._sources.delete_many({"output_id": output_id})
        await self._outputs.delete_one({"_id": output_id, "collector": token})
