"""MongoDB access for the status service. Every query here is served by an index
(`_id`, `images.request_outcomes_in_order`, `requests.outbox_pending`, `requests.newest_first`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from imgpipe_contracts import documents
from imgpipe_contracts.events import FINAL_STATES, ImageFailed, ImageProcessed

Outcome = ImageProcessed | ImageFailed
Document = dict[str, Any]
WEBHOOK_FINAL_STATES = ("delivered", "failed")


@dataclass(frozen=True)
class Progress:
    request_id: str
    total: int
    processed: int
    failed: int
    status: str

    @property
    def all_in(self) -> bool:
        return self.processed + self.failed >= self.total


def outcome_document(event: Outcome, now: datetime) -> Document:
    doc: Document = {
        "_id": event.image_id,
        "request_id": event.request_id,
        "row_index": event.row_index,
        "position": event.position,
        "input_url": event.input_url,
        "event_id": event.event_id,
        "recorded_at": now,
    }
    if isinstance(event, ImageProcessed):
        doc |= {
            "outcome": "processed",
            "output_url": event.output_url,
            "output_key": event.output_key,
            "width": event.width,
            "height": event.height,
            "source_format": event.source_format,
            "bytes_in": event.bytes_in,
            "bytes_out": event.bytes_out,
        }
    else:
        doc |= {
            "outcome": "failed",
            "reason": event.reason,
            "detail": event.detail,
            "attempts": event.attempts,
        }
    return doc


REASONS = "failures_by_reason"


def tally(fact: Document) -> Counter[str]:
    """What one new outcome fact adds to its request's counters."""
    if fact["outcome"] == "processed":
        return Counter(processed=1, bytes_in=fact["bytes_in"], bytes_out=fact["bytes_out"])
    # Reasons are our own short codes ([a-z0-9_]), safe as field names.
    return Counter({"failed": 1, f"{REASONS}.{fact['reason']}": 1})


def _product_update(event: Outcome) -> UpdateOne:
    pos = event.position
    if isinstance(event, ImageProcessed):
        change = {f"output_image_urls.{pos}": event.output_url, f"errors.{pos}": None}
    else:
        change = {f"errors.{pos}": f"{event.reason}: {event.detail}"}
    return UpdateOne(
        {"_id": documents.product_id(event.request_id, event.row_index)}, {"$set": change}
    )


class StatusRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def get_request(self, request_id: str, owner: str | None = None) -> Document | None:
        """The request; with an `owner`, only if that tenant uploaded it."""
        query: Document = {"_id": request_id}
        if owner is not None:
            query["tenant"] = owner
        doc: Document | None = await self._db[documents.REQUESTS].find_one(query)
        return doc

    async def record_outcomes(self, events: Sequence[Outcome], now: datetime) -> list[Progress]:
        """Insert one fact per image and count only the new ones; return touched requests.

        A batch that meets facts already stored (a redelivery, or a crash between insert and
        count) recounts those requests from the facts instead of trusting the counters.
        """
        unique = {e.image_id: e for e in events}
        docs = [outcome_document(e, now) for e in unique.values()]
        duplicates = await self._insert_new(docs)
        await self._db[documents.PRODUCTS].bulk_write(
            [_product_update(e) for e in unique.values()], ordered=False
        )
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
        cursor = self._db[documents.REQUESTS].find(
            {"_id": {"$in": list(fresh)}},
            {"total": 1, "processed": 1, "failed": 1, "status": 1},
        )
        return [_progress(doc) async for doc in cursor]

    async def _insert_new(self, docs: list[Document]) -> set[str]:
        """Insert facts; return the ids that were already there."""
        if not docs:
            return set()
        try:
            await self._db[documents.IMAGES].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != documents.DUPLICATE_KEY]
            if others or exc.details.get("writeConcernErrors"):
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def recount(self, request_id: str, now: datetime) -> Progress | None:
        """Set the counters from the facts; return the corrected progress."""
        counts: Counter[str] = Counter()
        pipeline: list[Document] = [
            {"$match": {"request_id": request_id}},
            {
                "$group": {
                    "_id": {"outcome": "$outcome", "reason": "$reason"},
                    "n": {"$sum": 1},
                    "bytes_in": {"$sum": "$bytes_in"},
                    "bytes_out": {"$sum": "$bytes_out"},
                }
            },
        ]
        async for row in await self._db[documents.IMAGES].aggregate(pipeline):
            counts[row["_id"]["outcome"]] += row["n"]
            counts["bytes_in"] += row["bytes_in"]
            counts["bytes_out"] += row["bytes_out"]
            if row["_id"].get("reason"):
                counts[f"{REASONS}.{row['_id']['reason']}"] += row["n"]
        reasons = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith(REASONS)}
        doc = await self._db[documents.REQUESTS].find_one_and_update(
            {"_id": request_id},
            {
                "$set": {
                    "processed": counts["processed"],
                    "failed": counts["failed"],
                    "bytes_in": counts["bytes_in"],
                    "bytes_out": counts["bytes_out"],
                    REASONS: reasons,
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
        """The newest requests; with an `owner`, only that tenant's."""
        query: Document = {} if owner is None else {"tenant": owner}
        cursor = self._db[documents.REQUESTS].find(query).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def products_in_order(self, request_id: str) -> list[Document]:
        cursor = self._db[documents.PRODUCTS].find(documents.products_of(request_id)).sort("_id", 1)
        return [doc async for doc in cursor]

    async def mark_products_processed(self, request_id: str) -> None:
        await self._db[documents.PRODUCTS].update_many(
            documents.products_of(request_id) | {"processed": False}, {"$set": {"processed": True}}
        )

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
            {"completion_event": 1},
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
    )
