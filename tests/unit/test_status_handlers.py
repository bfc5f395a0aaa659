"""The status service's handlers, with an in-memory repository, file store and broker: outcomes
are counted once, a finished request gets its output CSV and exactly one RequestCompleted, and
webhook outcomes show up in the request's status, at once even where it was cached."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure

from imgpipe_contracts import documents
from imgpipe_contracts.events import (
    FINAL_STATES,
    Event,
    ImageBatchRequested,
    ImageFailed,
    ImageOutcomes,
    ImageProcessed,
    ProductJobs,
    RequestAccepted,
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.files import StoreUnavailable
from imgpipe_runtime.retry import Reject, Unavailable
from imgpipe_status.assembly import Assembly
from imgpipe_status.handlers import (
    complete_request,
    handle_image_batches,
    handle_image_outcomes,
    handle_webhook_outcome,
    relay_pending_completions,
)
from imgpipe_status.progress import ProgressCache, Snapshot
from imgpipe_status.records import Outcome, outcome_document, row_batch_document
from imgpipe_status.repository import Progress, Recorded
from tests.unit.fakes import FILES, FakeBroker, FakeFiles

Document = dict[str, Any]
HEADER = ["S. No.", "Product Name", "Input Image Urls", "Output Image Urls", "Errors"]
HOOK = "https://receiver.test/hook"


class FakeRepository:
    """The StatusRepository methods the handlers call, over dicts.

    Facts are keyed by image id, so a redelivered outcome counts once; counters are always
    recounted from the facts; a completion is claimed only while the request is not final.
    `broken[name]` makes the method `name` raise that exception.
    """

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.requests: dict[str, Document] = {}
        self.row_batches: dict[str, Document] = {}
        self.products: dict[str, Document] = {}
        self.facts: dict[str, Document] = {}
        self.broken: dict[str, Exception] = {}
        # Runs just before a claim: lets a test play another consumer that finishes first.
        self.before_claim: Callable[[str], None] | None = None

    def _check(self, name: str) -> None:
        if name in self.broken:
            raise self.broken[name]

    # Seeding, as ingest does; with `recorded`, the rows too, as if their batches had come.
    def add_request(
        self,
        request_id: str,
        rows: list[list[str]],
        webhook_url: str | None = None,
        recorded: bool = True,
    ) -> None:
        now = datetime.now(UTC)
        total = sum(len(urls) for urls in rows)
        self.requests[request_id] = documents.request_document(
            request_id, len(rows), total, webhook_url, now
        )
        if recorded:
            self._add_rows([batch_of(request_id, rows)])

    def _add_rows(self, batches: Sequence[ImageBatchRequested]) -> list[str]:
        touched: list[str] = []
        for batch in batches:
            if batch.request_id not in touched:
                touched.append(batch.request_id)
            doc = row_batch_document(batch)
            self.row_batches.setdefault(doc["_id"], doc)
        for request_id in touched:
            if request_id in self.requests:
                mine = [b for b in self.row_batches.values() if b["request_id"] == request_id]
                self.requests[request_id]["rows_recorded"] = sum(b["row_count"] for b in mine)
        return touched

    def _progress(self, request_id: str) -> Progress:
        doc = self.requests[request_id]
        return Progress(
            request_id,
            doc["total"],
            doc["processed"],
            doc["failed"],
            doc["status"],
            doc["rows"],
            doc["rows_recorded"],
        )

    async def record_rows(self, batches: Sequence[ImageBatchRequested]) -> Recorded:
        self._check("record_rows")
        self.log.append("record_rows")
        known = set(self.row_batches)
        touched = self._add_rows(batches)
        new = [doc for key, doc in self.row_batches.items() if key not in known]
        return Recorded([self._progress(rid) for rid in touched if rid in self.requests], new)

    async def record_outcomes(self, events: Sequence[Outcome], now: datetime) -> Recorded:
        self._check("record_outcomes")
        self.log.append("record_outcomes")
        touched: list[str] = []
        new: list[Document] = []
        for event in events:
            if event.request_id not in touched:
                touched.append(event.request_id)
            if event.image_id in self.facts:
                continue
            self.facts[event.image_id] = outcome_document(event, now)
            new.append(self.facts[event.image_id])
        for request_id in touched:
            await self.recount(request_id, now)
        return Recorded([self._progress(rid) for rid in touched if rid in self.requests], new)

    async def recount(
        self, request_id: str, now: datetime, facts: list[Document] | None = None
    ) -> Progress | None:
        self._check("recount")
        if request_id not in self.requests:
            return None
        if facts is None:
            facts = [f for f in self.facts.values() if f["request_id"] == request_id]
        self.requests[request_id] |= {
            "processed": sum(f["outcome"] == "processed" for f in facts),
            "failed": sum(f["outcome"] == "failed" for f in facts),
            "updated_at": now,
        }
        return self._progress(request_id)

    async def get_request(self, request_id: str) -> Document | None:
        self._check("get_request")
        doc = self.requests.get(request_id)
        return dict(doc) if doc is not None else None

    async def rows_in_order(self, request_id: str) -> list[Document]:
        self._check("rows_in_order")
        mine = sorted(
            (b for b in self.row_batches.values() if b["request_id"] == request_id),
            key=lambda b: b["_id"],
        )
        return [row for batch in mine for row in batch["rows"]]

    async def outcomes(self, request_id: str) -> list[Document]:
        self._check("outcomes")
        self.log.append(f"outcomes {request_id}")
        return [dict(f) for f in self.facts.values() if f["request_id"] == request_id]

    async def add_products(self, products: list[Document]) -> None:
        self._check("add_products")
        self.log.append(f"add_products {len(products)}")
        for product in products:
            self.products.setdefault(product["_id"], product)

    async def drop_rows(self, request_id: str) -> None:
        self._check("drop_rows")
        for key in [k for k, b in self.row_batches.items() if b["request_id"] == request_id]:
            del self.row_batches[key]

    async def claim_completion(self, request_id: str, changes: Document) -> bool:
        self._check("claim_completion")
        self.log.append(f"claim {request_id}")
        if self.before_claim is not None:
            self.before_claim(request_id)
        doc = self.requests.get(request_id)
        if doc is None or doc["status"] in FINAL_STATES:
            return False
        doc |= changes | {"outbox_pending": True}
        return True

    async def pending_completions(self, older_than: datetime) -> list[Document]:
        self._check("pending_completions")
        return [
            {"_id": doc["_id"], "completion_event": doc["completion_event"]}
            for doc in self.requests.values()
            if doc.get("outbox_pending") and doc["completed_at"] < older_than
        ]

    async def mark_completion_published(self, request_id: str) -> None:
        self._check("mark_completion_published")
        self.log.append(f"mark_published {request_id}")
        self.requests[request_id].pop("outbox_pending", None)

    async def record_webhook_attempt(
        self, request_id: str, entry: Document, *, state: str, url: str, webhook_id: str
    ) -> None:
        self._check("record_webhook_attempt")
        webhook = self.requests[request_id].setdefault("webhook", {"history": [], "attempts": 0})
        if entry not in webhook["history"]:
            webhook["history"].append(entry)
        webhook["attempts"] = max(webhook["attempts"], entry["attempt"])
        webhook |= {"url": url, "webhook_id": webhook_id}
        if state in ("delivered", "failed") or webhook.get("status") not in ("delivered", "failed"):
            webhook |= {
                "status": state,
                "status_code": entry["status_code"],
                "reason": entry["reason"],
            }


class World:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.repository = FakeRepository(self.log)
        self.files = FakeFiles(self.log)
        self.broker = FakeBroker(self.log)
        # Cached for longer than any test: only the handlers' `forget` can refresh a status.
        self.progress_cache = ProgressCache(self._snapshot, ttl=3600)
        self.assembly = Assembly(capacity=1000)

    async def _snapshot(self, request_id: str) -> Snapshot | None:
        doc = self.repository.requests.get(request_id)
        if doc is None:
            return None
        return Snapshot(doc["tenant"], doc["status"], json.dumps(doc, default=str))

    async def status(self, request_id: str) -> Document:
        """The request as a poller sees it (through the cache)."""
        snapshot = await self.progress_cache.snapshot(request_id, None)
        assert snapshot is not None
        loaded: Document = json.loads(snapshot.body)
        return loaded

    async def outcomes(self, *events: Event, attempt: int = 1) -> None:
        await handle_image_outcomes(
            [Delivery(as_message(e), attempt, 3) for e in events],
            repository=self.repository,  # type: ignore[arg-type]
            broker=self.broker,
            files=self.files,
            progress_cache=self.progress_cache,
            assembly=self.assembly,
        )

    async def complete(self, progress: Progress) -> None:
        await complete_request(
            progress,
            repository=self.repository,  # type: ignore[arg-type]
            broker=self.broker,
            files=self.files,
            progress_cache=self.progress_cache,
            assembly=self.assembly,
        )

    async def batches(self, *events: Event, attempt: int = 1) -> None:
        await handle_image_batches(
            [Delivery(e, attempt, 3) for e in events],
            repository=self.repository,  # type: ignore[arg-type]
            broker=self.broker,
            files=self.files,
            progress_cache=self.progress_cache,
            assembly=self.assembly,
        )

    async def relay(self, grace: float) -> int:
        return await relay_pending_completions(
            repository=self.repository,  # type: ignore[arg-type]
            broker=self.broker,
            grace=grace,
        )

    async def webhook_outcome(self, event: Event) -> None:
        await handle_webhook_outcome(
            Delivery(event, 1, 3),
            repository=self.repository,  # type: ignore[arg-type]
            progress_cache=self.progress_cache,
        )

    def completions(self) -> list[RequestCompleted]:
        return [e for e in self.broker.published if isinstance(e, RequestCompleted)]


@pytest.fixture
def world() -> World:
    return World()


def processed(request_id: str, row: int, position: int, url: str) -> ImageProcessed:
    key = f"images/{request_id}/{row + 1:06d}-{position + 1:02d}-x.jpg"
    return ImageProcessed(
        request_id=request_id,
        row_index=row,
        position=position,
        input_url=url,
        output_key=key,
        output_url=f"{FILES}/{key}",
        width=10,
        height=10,
        source_format="PNG",
        bytes_in=100,
        bytes_out=40,
    )


def failed(request_id: str, row: int, position: int, url: str) -> ImageFailed:
    return ImageFailed(
        request_id=request_id,
        row_index=row,
        position=position,
        input_url=url,
        reason="http_404",
        detail="not found",
    )


def as_message(event: Event) -> Event:
    """An outcome as the processor sends it: inside an ImageOutcomes (other events as they are)."""
    if isinstance(event, ImageProcessed):
        return ImageOutcomes(request_id=event.request_id, processed=[event])
    if isinstance(event, ImageFailed):
        return ImageOutcomes(request_id=event.request_id, failed=[event])
    return event


def batch_of(request_id: str, rows: list[list[str]], first_row: int = 0) -> ImageBatchRequested:
    return ImageBatchRequested(
        request_id=request_id,
        rows=[
            ProductJobs(
                row_index=first_row + i,
                serial_number=first_row + i + 1,
                product_name=f"SKU{first_row + i + 1}",
                urls=urls,
            )
            for i, urls in enumerate(rows)
        ],
    )


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


# Two products, three images: row 0 has a.png and b.png, row 1 has c.png.
A, B, C = "https://shop.test/a.png", "https://shop.test/b.png", "https://shop.test/c.png"


def new_request(world: World, webhook_url: str | None = HOOK) -> str:
    request_id = uuid.uuid4().hex
    world.repository.add_request(request_id, [[A, B], [C]], webhook_url)
    return request_id


# --- completing a request ---------------------------------------------------------------------


async def test_outcomes_that_leave_images_outstanding_complete_nothing(world: World) -> None:
    rid = new_request(world)

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B))

    assert world.files.stored == {}
    assert world.broker.published == []
    assert world.repository.requests[rid]["status"] == "Pending"
    assert world.repository.requests[rid]["processed"] == 1
    assert world.repository.requests[rid]["failed"] == 1


async def test_a_request_whose_rows_are_not_all_recorded_waits_for_them_after_its_last_outcome(
    world: World,
) -> None:
    rid = uuid.uuid4().hex
    world.repository.add_request(rid, [[A, B], [C]], HOOK, recorded=False)
    await world.batches(batch_of(rid, [[A, B]]))

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    assert world.completions() == []

    await world.batches(batch_of(rid, [[C]], first_row=1))
    [completion] = world.completions()
    assert (completion.processed, completion.failed) == (2, 1)


async def test_a_redelivered_batch_records_its_rows_once(world: World) -> None:
    rid = uuid.uuid4().hex
    world.repository.add_request(rid, [[A, B], [C]], HOOK, recorded=False)
    first = batch_of(rid, [[A, B]])

    await world.batches(first)
    await world.batches(first, attempt=2)

    assert world.repository.requests[rid]["rows_recorded"] == 1
    assert sorted(world.repository.row_batches) == [documents.product_id(rid, 0)]
    assert world.repository.products == {}


async def test_a_batch_redelivered_after_its_request_finished_leaves_no_rows_behind(
    world: World,
) -> None:
    rid = new_request(world)
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    assert world.repository.requests[rid]["status"] == "Completed"

    await world.batches(batch_of(rid, [[A, B], [C]]), attempt=2)

    assert world.repository.row_batches == {}
    assert len(world.completions()) == 1


async def test_a_completed_request_has_its_products_outputs_errors_and_processed_flags(
    world: World,
) -> None:
    rid = new_request(world)

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    assert world.repository.row_batches == {}
    first, second = (world.repository.products[documents.product_id(rid, i)] for i in (0, 1))
    assert first["output_image_urls"] == [processed(rid, 0, 0, A).output_url, None]
    assert first["errors"] == [None, "http_404: not found"]
    assert second["output_image_urls"] == [processed(rid, 1, 0, C).output_url]
    assert first["processed"] and second["processed"]


async def test_a_batch_delivery_with_an_event_that_is_not_a_batch_is_rejected_unrecorded(
    world: World,
) -> None:
    rid = uuid.uuid4().hex
    world.repository.add_request(rid, [[A, B], [C]], HOOK, recorded=False)

    with pytest.raises(Reject):
        await world.batches(batch_of(rid, [[A, B]]), processed(rid, 1, 0, C))

    assert world.repository.products == {}


async def test_the_last_outcome_writes_the_csv_then_claims_then_publishes_the_completion(
    world: World,
) -> None:
    rid = new_request(world)
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B))
    world.log.clear()

    await world.outcomes(processed(rid, 1, 0, C))

    key = f"outputs/output_{rid}.csv"
    assert world.log == [
        "record_outcomes",
        f"write {key}",
        "add_products 2",
        f"claim {rid}",
        "publish request.completed",
        f"mark_published {rid}",
    ]


async def test_the_output_csv_has_the_five_column_header_and_rows_in_input_order(
    world: World,
) -> None:
    rid = new_request(world)

    await world.outcomes(failed(rid, 0, 1, B), processed(rid, 1, 0, C), processed(rid, 0, 0, A))

    data, content_type = world.files.stored[f"outputs/output_{rid}.csv"]
    assert content_type == "text/csv; charset=utf-8"
    rows = read_csv(data)
    assert rows[0] == HEADER
    assert rows[1:] == [
        [
            "1",
            "SKU1",
            f"{A},{B}",
            f"{FILES}/images/{rid}/000001-01-x.jpg,",
            f"{B} -> http_404: not found",
        ],
        ["2", "SKU2", C, f"{FILES}/images/{rid}/000002-01-x.jpg", ""],
    ]


async def test_a_completed_request_publishes_exactly_one_request_completed_with_its_counts(
    world: World,
) -> None:
    rid = new_request(world, webhook_url=HOOK)

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    [event] = world.completions()
    key = f"outputs/output_{rid}.csv"
    assert event.request_id == rid
    assert event.status == "Completed"
    assert (event.total, event.processed, event.failed) == (3, 2, 1)
    assert event.output_csv_path == key
    assert event.output_csv_url == await world.files.url_for(key)
    assert event.webhook_url == HOOK
    stored = world.repository.requests[rid]
    assert stored["status"] == "Completed"
    assert stored["output_csv_path"] == key
    assert "outbox_pending" not in stored
    assert all(p["processed"] for p in world.repository.products.values())


async def test_a_request_whose_every_image_failed_completes_as_failed(world: World) -> None:
    rid = new_request(world, webhook_url=None)

    await world.outcomes(failed(rid, 0, 0, A), failed(rid, 0, 1, B), failed(rid, 1, 0, C))

    [event] = world.completions()
    assert event.status == "Failed"
    assert (event.total, event.processed, event.failed) == (3, 0, 3)
    assert event.webhook_url is None
    assert world.repository.requests[rid]["status"] == "Failed"


async def test_a_redelivered_batch_that_completes_the_same_request_publishes_nothing_more(
    world: World,
) -> None:
    rid = new_request(world)
    batch = (processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    await world.outcomes(*batch)

    await world.outcomes(*batch, attempt=2)

    assert len(world.completions()) == 1
    assert world.repository.requests[rid]["processed"] == 2
    assert world.repository.requests[rid]["failed"] == 1


async def test_a_duplicate_outcome_within_a_batch_counts_once_and_completes_nothing(
    world: World,
) -> None:
    rid = new_request(world)

    await world.outcomes(processed(rid, 0, 0, A), processed(rid, 0, 0, A), failed(rid, 0, 1, B))

    assert world.broker.published == []
    assert world.repository.requests[rid]["processed"] == 1


async def test_a_batch_with_an_event_that_is_not_an_image_outcome_is_rejected_unrecorded(
    world: World,
) -> None:
    rid = new_request(world)
    accepted = RequestAccepted(request_id=rid, rows=2, images=3, status_url="https://s.test/x")

    with pytest.raises(Reject):
        await world.outcomes(processed(rid, 0, 0, A), accepted)

    assert "record_outcomes" not in world.log
    assert world.repository.facts == {}


@pytest.mark.parametrize("method", ["record_outcomes", "recount", "claim_completion"])
async def test_a_lost_database_connection_makes_the_batch_unavailable(
    world: World, method: str
) -> None:
    rid = new_request(world)
    world.repository.broken[method] = ConnectionFailure("connection refused")

    with pytest.raises(Unavailable):
        await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    assert world.completions() == []


async def test_an_unavailable_file_store_leaves_the_request_pending_and_the_batch_unavailable(
    world: World,
) -> None:
    rid = new_request(world)
    world.files.broken = StoreUnavailable("S3 did not answer")

    with pytest.raises(Unavailable, match="file store unavailable"):
        await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    assert world.completions() == []
    assert world.repository.requests[rid]["status"] == "Pending"

    world.files.broken = None
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    [event] = world.completions()
    assert (event.processed, event.failed) == (2, 1)


async def test_a_consumer_that_loses_the_claim_to_another_publishes_nothing(
    world: World,
) -> None:
    rid = new_request(world)
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B))
    world.repository.facts[f"{rid}:1:0"] = outcome_document(
        processed(rid, 1, 0, C), datetime.now(UTC)
    )

    def another_consumer_completes(request_id: str) -> None:
        world.repository.requests[request_id]["status"] = "Completed"

    world.repository.before_claim = another_consumer_completes

    await world.complete(Progress(rid, total=3, processed=1, failed=1, status="Pending"))

    assert f"claim {rid}" in world.log
    assert world.broker.published == []
    assert "outbox_pending" not in world.repository.requests[rid]


# --- products as rows finish ------------------------------------------------------------------


def request_with_rows_unrecorded(world: World) -> str:
    """A request whose rows come through the handler (as their batch message does)."""
    rid = uuid.uuid4().hex
    world.repository.add_request(rid, [[A, B], [C]], recorded=False)
    return rid


async def test_a_rows_product_goes_in_when_its_last_image_has_an_outcome(world: World) -> None:
    rid = request_with_rows_unrecorded(world)
    await world.batches(batch_of(rid, [[A, B], [C]]))

    await world.outcomes(processed(rid, 0, 1, B), processed(rid, 1, 0, C))
    assert set(world.repository.products) == {documents.product_id(rid, 1)}
    await world.outcomes(failed(rid, 0, 0, A))

    assert world.completions()[0].request_id == rid
    assert set(world.repository.products) == {documents.product_id(rid, r) for r in (0, 1)}
    # Inserted as their rows finished, not again at completion.
    assert world.log.count("add_products 1") == 2


async def test_rows_recorded_after_their_outcomes_go_in_with_their_products(
    world: World,
) -> None:
    rid = request_with_rows_unrecorded(world)
    await world.outcomes(processed(rid, 1, 0, C))
    assert world.repository.products == {}

    await world.batches(batch_of(rid, [[A, B]]))
    await world.batches(batch_of(rid, [[C]], first_row=1))

    assert set(world.repository.products) == {documents.product_id(rid, 1)}
    assert world.completions() == []


async def test_a_completion_whose_facts_were_all_recorded_here_reads_none_back(
    world: World,
) -> None:
    rid = request_with_rows_unrecorded(world)
    await world.batches(batch_of(rid, [[A, B], [C]]))

    await world.outcomes(processed(rid, 0, 0, A), processed(rid, 0, 1, B), failed(rid, 1, 0, C))

    assert world.completions()[0].processed == 2
    assert f"outcomes {rid}" not in world.log


async def test_products_built_as_rows_finish_are_those_a_completion_builds(world: World) -> None:
    rid = request_with_rows_unrecorded(world)
    events = (processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    await world.batches(batch_of(rid, [[A, B], [C]]))
    for event in events:
        await world.outcomes(event)

    at_completion = World()
    at_completion.assembly = Assembly(capacity=0)
    at_completion.repository.add_request(rid, [[A, B], [C]], recorded=False)
    await at_completion.batches(batch_of(rid, [[A, B], [C]]))
    for event in events:
        await at_completion.outcomes(event)

    assert world.repository.products == at_completion.repository.products
    assert "add_products 2" in at_completion.log and "add_products 1" in world.log
    key = f"outputs/output_{rid}.csv"
    assert world.files.stored[key] == at_completion.files.stored[key]


async def test_a_fact_recorded_by_another_process_is_read_back_at_completion(
    world: World,
) -> None:
    rid = request_with_rows_unrecorded(world)
    await world.batches(batch_of(rid, [[A, B], [C]]))
    # Another status process took this outcome: this one never saw it.
    elsewhere = processed(rid, 0, 0, A)
    world.repository.facts[elsewhere.image_id] = outcome_document(elsewhere, datetime.now(UTC))

    await world.outcomes(processed(rid, 0, 1, B), processed(rid, 1, 0, C))

    assert f"outcomes {rid}" in world.log
    assert world.completions()[0].processed == 3
    product = world.repository.products[documents.product_id(rid, 0)]
    assert product["output_image_urls"][0] == elsewhere.output_url


async def test_a_request_finished_by_another_process_is_let_go_of(world: World) -> None:
    rid = request_with_rows_unrecorded(world)
    await world.batches(batch_of(rid, [[A, B], [C]]))
    await world.outcomes(processed(rid, 0, 0, A))
    assert world.assembly.facts(rid, 1) is not None

    world.repository.requests[rid]["status"] = "Completed"
    await world.outcomes(processed(rid, 0, 1, B))

    assert world.assembly.facts(rid, 1) is None
    assert world.completions() == []


# --- the outbox -------------------------------------------------------------------------------


async def test_a_completion_that_could_not_be_published_stays_pending_in_the_outbox(
    world: World,
) -> None:
    rid = new_request(world)
    world.broker.broken = ConnectionError("broker gone")

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))

    stored = world.repository.requests[rid]
    assert stored["status"] == "Completed"
    assert stored["outbox_pending"] is True
    assert f"mark_published {rid}" not in world.log


async def test_the_relay_publishes_a_pending_completion_later_and_marks_it_published(
    world: World,
) -> None:
    rid = new_request(world)
    world.broker.broken = ConnectionError("broker gone")
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    claimed_event = world.repository.requests[rid]["completion_event"]
    world.broker.broken = None
    world.repository.requests[rid]["completed_at"] -= timedelta(minutes=5)

    relayed = await world.relay(grace=60)

    assert relayed == 1
    [event] = world.completions()
    assert event.model_dump(mode="json") == claimed_event
    assert event.request_id == rid
    assert "outbox_pending" not in world.repository.requests[rid]
    assert await world.relay(grace=60) == 0
    assert len(world.completions()) == 1


async def test_the_relay_leaves_a_completion_younger_than_the_grace_period_to_its_claimer(
    world: World,
) -> None:
    rid = new_request(world)
    world.broker.broken = ConnectionError("broker gone")
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    world.broker.broken = None

    relayed = await world.relay(grace=60)

    assert relayed == 0
    assert world.completions() == []
    assert world.repository.requests[rid]["outbox_pending"] is True


async def test_a_relay_whose_publish_fails_again_keeps_the_completion_pending(
    world: World,
) -> None:
    rid = new_request(world)
    world.broker.broken = ConnectionError("broker gone")
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B), processed(rid, 1, 0, C))
    world.repository.requests[rid]["completed_at"] -= timedelta(minutes=5)

    await world.relay(grace=60)

    assert world.completions() == []
    assert world.repository.requests[rid]["outbox_pending"] is True


# --- webhook outcomes -------------------------------------------------------------------------


def webhook_event(kind: str, request_id: str, webhook_id: str) -> Event:
    common: dict[str, Any] = {"request_id": request_id, "webhook_id": webhook_id, "url": HOOK}
    if kind == "delivered":
        return WebhookDelivered(**common, attempts=2, status_code=204)
    if kind == "retrying":
        return WebhookAttemptFailed(**common, attempts=1, status_code=503, reason="http_503")
    return WebhookFailed(**common, attempts=4, status_code=500, reason="http_500")


@pytest.mark.parametrize(
    ("kind", "attempt", "outcome", "status_code", "reason"),
    [
        ("delivered", 2, "delivered", 204, None),
        ("retrying", 1, "failed", 503, "http_503"),
        ("failed", 4, "failed", 500, "http_500"),
    ],
)
async def test_a_webhook_outcome_is_recorded_with_its_state_attempt_and_status_code(
    world: World, kind: str, attempt: int, outcome: str, status_code: int, reason: str | None
) -> None:
    rid = new_request(world)
    webhook_id = uuid.uuid4().hex
    event = webhook_event(kind, rid, webhook_id)

    await world.webhook_outcome(event)

    webhook = world.repository.requests[rid]["webhook"]
    assert webhook["status"] == kind
    assert webhook["attempts"] == attempt
    assert webhook["status_code"] == status_code
    assert webhook["url"] == HOOK
    assert webhook["webhook_id"] == webhook_id
    assert webhook["history"] == [
        {
            "attempt": attempt,
            "outcome": outcome,
            "status_code": status_code,
            "reason": reason,
            "at": event.occurred_at,
        }
    ]


async def test_a_lost_database_connection_makes_a_webhook_outcome_unavailable(
    world: World,
) -> None:
    rid = new_request(world)
    world.repository.broken["record_webhook_attempt"] = ConnectionFailure("connection refused")

    with pytest.raises(Unavailable):
        await world.webhook_outcome(webhook_event("delivered", rid, uuid.uuid4().hex))


async def test_an_event_that_is_not_a_webhook_outcome_is_rejected(world: World) -> None:
    rid = new_request(world)

    with pytest.raises(Reject):
        await world.webhook_outcome(processed(rid, 0, 0, A))

    assert "webhook" not in world.repository.requests[rid]


# --- what pollers see ------------------------------------------------------------------------


async def test_an_outcome_batch_leaves_a_cached_status_to_expire_on_its_own(
    world: World,
) -> None:
    rid = new_request(world)
    assert (await world.status(rid))["processed"] == 0

    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B))

    assert (await world.status(rid))["processed"] == 0
    world.progress_cache.forget(rid)  # what the TTL does
    status = await world.status(rid)
    assert (status["processed"], status["failed"]) == (1, 1)


async def test_a_status_cached_before_completion_shows_the_final_state_at_once(
    world: World,
) -> None:
    rid = new_request(world)
    await world.outcomes(processed(rid, 0, 0, A), failed(rid, 0, 1, B))
    world.repository.facts[f"{rid}:1:0"] = outcome_document(
        processed(rid, 1, 0, C), datetime.now(UTC)
    )
    assert (await world.status(rid))["status"] == "Pending"

    await world.complete(Progress(rid, total=3, processed=1, failed=1, status="Pending"))

    status = await world.status(rid)
    assert (status["status"], status["processed"]) == ("Completed", 2)


async def test_a_status_cached_before_a_webhook_outcome_shows_it_at_once(world: World) -> None:
    rid = new_request(world)
    assert "webhook" not in await world.status(rid)

    await world.webhook_outcome(webhook_event("delivered", rid, uuid.uuid4().hex))

    assert (await world.status(rid))["webhook"]["status"] == "delivered"
