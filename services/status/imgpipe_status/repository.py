"""MongoDB access for the status service. Every query here is served by an index
(`_id`, `images.request_outcomes_in_order`, `requests.outbox_pending`, `requests.newest_first`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from imgpipe_contracts import documents
from imgpipe_contracts.events import (
    FINAL_STATES,
    ImageBatchRequested,
)
from imgpipe_runtime.mongo import Document
from imgpipe_status.records import (
    FACT_FIELDS,
    REASONS,
    REUSED,
    Outcome,
    outcome_document,
    row_batch_document,
    tally,
)
from imgpipe_status.retention import referring_requests

WEBHOOK_FINAL_STATES = ("delivered", "failed")


@dataclass(frozen=True)
class Progress:
    request_id: str
    total: int
    processed: int
    failed: int
    status: str
    rows: int = 0
    rows_recorded: int = 0

    @property
    def all_in(self) -> bool:
        """Every image has an outcome."""
        return self.processed + self.failed >= self.total

    @property
    def ready(self) -> bool:
        """Every image has an outcome and every row is recorded: the request can complete."""
        return self.all_in and self.rows_recorded >= self.rows


@dataclass(frozen=True)
class Recorded:
    """The requests a batch touched, and the documents it newly inserted (not those met again)."""

    progress: list[Progress]
    new: list[Document]


class StatusRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def get_request(self, request_id: str, owner: str | None = None) -> Document | None:
        """The request; with an `owner`, only if that tenant uploaded it. One whose deletion
        has begun is gone already."""
        query: Document = {"_id": request_id, "deleting_since": None}
        if owner is not None:
            query["tenant"] = owner
        doc: Document | None = await self._db[documents.REQUESTS].find_one(query)
        return doc

    async def output_owned_by(self, output_id: str, tenant: str | None) -> bool:
        """Whether a request of `tenant`'s refers to the shared output."""
        async for requests in referring_requests(self._db[documents.OUTPUT_REFS], output_id):
            query: Document = {"_id": {"$in": requests}}
            if tenant is not None:
                query["tenant"] = tenant
            if await self._db[documents.REQUESTS].find_one(query, {"_id": 1}) is not None:
                return True
        return False

    async def record_outcomes(self, events: Sequence[Outcome], now: datetime) -> Recorded:
        """Insert one fact per image and count only the new ones; return the touched requests
        and the new facts.

        A batch that meets facts already stored (a redelivery, or a crash between insert and
        count) recounts those requests from the facts instead of trusting the counters.
        """
        unique = {e.image_id: e for e in events}
        docs = [outcome_document(e, now) for e in unique.values()]
        duplicates = await self._insert_new(documents.IMAGES, docs)
        fresh: dict[str, Counter[str]] = {}
        for doc in docs:
            fresh.setdefault(doc["request_id"], Counter())
            if doc["_id"] not in duplicates:
                fresh[doc["request_id"]] += tally(doc)
        recount = {unique[i].request_id for i in duplicates}
        updates = [
            UpdateOne({"_id": rid}, {"$inc": dict(counts), "$set": {"updated_at": now}})
            for rid, counts in fresh.items()
            if rid not in recount and counts
        ]
        if updates:
            await self._db[documents.REQUESTS].bulk_write(updates, ordered=False)
        for rid in recount:
            await self.recount(rid, now)
        new = [doc for doc in docs if doc["_id"] not in duplicates]
        return Recorded(await self._progress_of(list(fresh)), new)

    async def record_rows(self, batches: Sequence[ImageBatchRequested]) -> Recorded:
        """Keep the batches' rows until their requests complete and count the new ones on
        their requests; return the touched requests and the new row batches. Like the facts:
        a batch met again (a redelivery) recounts its request's rows instead of trusting the
        counter."""
        docs = [row_batch_document(batch) for batch in batches]
        duplicates = await self._insert_new(documents.ROW_BATCHES, docs)
        fresh: Counter[str] = Counter()
        for doc in docs:
            fresh[doc["request_id"]] += 0 if doc["_id"] in duplicates else doc["row_count"]
        recount = {doc["request_id"] for doc in docs if doc["_id"] in duplicates}
        updates = [
            UpdateOne({"_id": rid}, {"$inc": {"rows_recorded": n}})
            for rid, n in fresh.items()
            if rid not in recount and n
        ]
        if updates:
            await self._db[documents.REQUESTS].bulk_write(updates, ordered=False)
        for rid in recount:
            pipeline: list[Document] = [
                {"$match": documents.products_of(rid)},
                {"$group": {"_id": None, "rows": {"$sum": "$row_count"}}},
            ]
            counted = await (await self._db[documents.ROW_BATCHES].aggregate(pipeline)).to_list()
            await self._db[documents.REQUESTS].update_one(
                {"_id": rid}, {"$set": {"rows_recorded": counted[0]["rows"] if counted else 0}}
            )
        new = [doc for doc in docs if doc["_id"] not in duplicates]
        return Recorded(await self._progress_of(list(fresh)), new)

    async def _progress_of(self, request_ids: list[str]) -> list[Progress]:
        cursor = self._db[documents.REQUESTS].find(
            {"_id": {"$in": request_ids}},
            {"total": 1, "processed": 1, "failed": 1, "status": 1, "rows": 1, "rows_recorded": 1},
        )
        return [_progress(doc) async for doc in cursor]

    async def _insert_new(self, collection: str, docs: list[Document]) -> set[str]:
        """Insert documents with unique ids; return the ids that were already there."""
        if not docs:
            return set()
        try:
            await self._db[collection].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != documents.DUPLICATE_KEY]
            if others or exc.details.get("writeConcernErrors"):
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def recount(
        self, request_id: str, now: datetime, facts: list[Document] | None = None
    ) -> Progress | None:
        """Set the counters from the facts (`outcomes()`, read here unless given); return the
        corrected progress."""
        if facts is None:
            facts = await self.outcomes(request_id)
        counts: Counter[str] = sum(map(tally, facts), Counter())
        reasons = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith(f"{REASONS}.")}
        reused = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith(f"{REUSED}.")}
        doc = await self._db[documents.REQUESTS].find_one_and_update(
            {"_id": request_id},
            {
                "$set": {
                    "processed": counts["processed"],
                    "failed": counts["failed"],
                    "bytes_in": counts["bytes_in"],
                    "bytes_out": counts["bytes_out"],
                    "bytes_not_downloaded": counts["bytes_not_downloaded"],
                    REASONS: reasons,
                    REUSED: reused,
                    "updated_at": now,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        return _progress(doc) if doc else None

    async def failures(self, request_id: str, limit: int) -> list[Document]:
        """The first `limit` failed images, in file order."""
        return await self._images(request_id, "failed", limit)

    async def processed_images(self, request_id: str, limit: int) -> list[Document]:
        """The first `limit` processed images, in file order."""
        return await self._images(request_id, "processed", limit)

    async def _images(self, request_id: str, outcome: str, limit: int) -> list[Document]:
        cursor = (
            self._db[documents.IMAGES]
            .find({"request_id": request_id, "outcome": outcome})
            .sort([("row_index", 1), ("position", 1)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def recent_requests(self, limit: int, owner: str | None = None) -> list[Document]:
        """The newest requests; with an `owner`, only that tenant's. (Those being deleted
        are left out here, not in the query, which the index then serves alone.)"""
        query: Document = {} if owner is None else {"tenant": owner}
        cursor = self._db[documents.REQUESTS].find(query).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor if doc.get("deleting_since") is None]

    async def rows_in_order(self, request_id: str) -> list[Document]:
        """The request's rows as its batches brought them, in file order."""
        cursor = (
            self._db[documents.ROW_BATCHES].find(documents.products_of(request_id)).sort("_id", 1)
        )
        return [row async for batch in cursor for row in batch["rows"]]

    async def outcomes(self, request_id: str) -> list[Document]:
        """Every outcome fact of a request: what its counters and its products' outputs are
        made of."""
        cursor = self._db[documents.IMAGES].find(
            {"request_id": request_id}, dict.fromkeys(FACT_FIELDS, 1)
        )
        return [doc async for doc in cursor]

    async def add_products(self, products: list[Document]) -> None:
        """Insert a finished request's products; those already there (a repeated completion,
        with the same content) are left as they are."""
        await self._insert_new(documents.PRODUCTS, products)

    async def drop_rows(self, request_id: str) -> None:
        await self._db[documents.ROW_BATCHES].delete_many(documents.products_of(request_id))

    async def claim_completion(self, request_id: str, changes: Document) -> bool:
        """Move the request to its final state unless someone already did; True if we did."""
        result = await self._db[documents.REQUESTS].update_one(
            {"_id": request_id, "status": {"$nin": list(FINAL_STATES)}},
            {"$set": changes | {"outbox_pending": True}},
        )
        return result.modified_count == 1

    async def pending_completions(self, older_than: datetime) -> list[Document]:
        cursor = self._db[documents.REQUESTS].find(
            {"outbox_pending": True, "completed_at": {"$lt": older_than}},
            {"completion_event": 1, "traceparent": 1},
        )
        return [doc async for doc in cursor]

    async def mark_completion_published(self, request_id: str) -> None:
        await self._db[documents.REQUESTS].update_one(
            {"_id": request_id}, {"$unset": {"outbox_pending": ""}}
        )

    async def record_webhook_attempt(
        self, request_id: str, entry: Document, *, state: str, url: str, webhook_id: str
    ) -> None:
        """Add an attempt to the webhook's history (a set: a redelivery adds nothing), then
        move its state; a late "retrying" never overwrites a final state."""
        requests = self._db[documents.REQUESTS]
        await requests.update_one(
            {"_id": request_id},
            {
                "$addToSet": {"webhook.history": entry},
                "$max": {"webhook.attempts": entry["attempt"]},
                "$set": {"webhook.url": url, "webhook.webhook_id": webhook_id},
            },
        )
        latest = {"webhook.status_code": entry["status_code"], "webhook.reason": entry["reason"]}
        not_final = {"webhook.status": {"$nin": list(WEBHOOK_FINAL_STATES)}}
        await requests.update_one(
            {"_id": request_id} | ({} if state in WEBHOOK_FINAL_STATES else not_final),
            {"$set": {"webhook.status": state} | latest},
        )


def _progress(doc: Document) -> Progress:
    return Progress(
        request_id=doc["_id"],
        total=doc.get("total", 0),
        processed=doc.get("processed", 0),
        failed=doc.get("failed", 0),
        status=doc.get("status", "Pending"),
        rows=doc.get("rows", 0),
        rows_recorded=doc.get("rows_recorded", 0),
    )
