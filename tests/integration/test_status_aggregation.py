"""Status aggregation on the real database and broker: idempotent counting, completion once."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.events import (
    Event,
    ImageBatchRequested,
    ImageFailed,
    ImageOutcomes,
    ImageProcessed,
    ProductJobs,
    RequestCompleted,
)
from imgpipe_contracts.topology import NOTIFIER_REQUEST_COMPLETED
from imgpipe_runtime.broker import Broker
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.files import LocalFileStore
from imgpipe_runtime.mongo import ensure_indexes
from imgpipe_runtime.retry import Unavailable
from imgpipe_status.assembly import Assembly
from imgpipe_status.handlers import (
    complete_request,
    handle_image_batches,
    handle_image_outcomes,
    relay_pending_completions,
)
from imgpipe_status.progress import ProgressCache, load_snapshot
from imgpipe_status.records import outcome_document
from imgpipe_status.repository import StatusRepository
from tests.conftest import Namespace
from tests.integration.amqp import take

Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
async def repository(ns: Namespace, mongo: Mongo) -> StatusRepository:
    await ensure_indexes(mongo[ns.database])
    repo = StatusRepository(mongo[ns.database])
    return repo


@pytest.fixture
def files(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path, "http://status.test")


def cache_over(repository: StatusRepository, files: LocalFileStore) -> ProgressCache:
    """Statuses cached for longer than any test: only the handlers' `forget` refreshes one."""
    return ProgressCache(partial(load_snapshot, repository=repository, files=files), ttl=3600)


@pytest.fixture
def progress_cache(repository: StatusRepository, files: LocalFileStore) -> ProgressCache:
    return cache_over(repository, files)


@pytest.fixture
def assembly() -> Assembly:
    return Assembly(capacity=1000)


async def accepted_request(mongo: Mongo, ns: Namespace, urls_per_row: list[int]) -> str:
    """Record a request as ingest does, and its rows as status does from the batch."""
    request_id = uuid.uuid4().hex
    db = mongo[ns.database]
    now = datetime.now(UTC)
    await db[documents.REQUESTS].insert_one(
        documents.request_document(request_id, len(urls_per_row), sum(urls_per_row), None, now)
    )
    await StatusRepository(db).record_rows([batch_of(request_id, urls_per_row)])
    return request_id


def batch_of(request_id: str, urls_per_row: list[int], first_row: int = 0) -> ImageBatchRequested:
    return ImageBatchRequested(
        request_id=request_id,
        rows=[
            ProductJobs(
                row_index=row,
                serial_number=row + 1,
                product_name=f"SKU{row + 1}",
                urls=[f"http://origin.test/{row}-{pos}.jpg" for pos in range(count)],
            )
            for row, count in enumerate(urls_per_row[first_row:], first_row)
        ],
    )


def processed(request_id: str, row: int, pos: int) -> ImageProcessed:
    key = f"images/{request_id}/{row}-{pos}.jpg"
    return ImageProcessed(
        request_id=request_id,
        row_index=row,
        position=pos,
        input_url=f"http://origin.test/{row}-{pos}.jpg",
        output_key=key,
        output_url=f"http://status.test/files/{key}",
        width=10,
        height=10,
        source_format="JPEG",
        bytes_in=100,
        bytes_out=50,
    )


def failed(request_id: str, row: int, pos: int) -> ImageFailed:
    return ImageFailed(
        request_id=request_id,
        row_index=row,
        position=pos,
        input_url=f"http://origin.test/{row}-{pos}.jpg",
        reason="http_404",
        detail="the server answered 404 Not Found",
    )


def deliveries(*events: Event) -> list[Delivery]:
    """Outcomes as the processor sends them, inside an ImageOutcomes each."""
    return [Delivery(as_message(event), 1, 3) for event in events]


def as_message(event: Event) -> Event:
    if isinstance(event, ImageProcessed):
        return ImageOutcomes(request_id=event.request_id, processed=[event])
    if isinstance(event, ImageFailed):
        return ImageOutcomes(request_id=event.request_id, failed=[event])
    return event


@pytest.fixture
def completions(broker: Broker) -> str:
    """The notifier's queue, where request.completed lands (nobody consumes it here)."""
    return broker.topology.queue(NOTIFIER_REQUEST_COMPLETED)


async def test_a_redelivered_outcome_is_counted_once(
    ns: Namespace, mongo: Mongo, repository: StatusRepository
) -> None:
    request_id = await accepted_request(mongo, ns, [2])
    event = processed(request_id, 0, 0)
    now = datetime.now(UTC)
    await repository.record_outcomes([event], now)
    [progress] = (await repository.record_outcomes([event, event], now)).progress
    assert (progress.processed, progress.failed, progress.total) == (1, 0, 2)


async def test_an_outcome_stored_but_not_counted_before_a_crash_is_counted_on_redelivery(
    ns: Namespace, mongo: Mongo, repository: StatusRepository
) -> None:
    request_id = await accepted_request(mongo, ns, [3])
    now = datetime.now(UTC)
    await repository.record_outcomes([processed(request_id, 0, 0)], now)
    crashed = failed(request_id, 0, 1)
    await mongo[ns.database][documents.IMAGES].insert_one(outcome_document(crashed, now))
    recorded = await repository.record_outcomes([crashed, processed(request_id, 0, 2)], now)
    [progress] = recorded.progress
    assert [doc["_id"] for doc in recorded.new] == [f"{request_id}:0:2"]
    assert (progress.processed, progress.failed) == (2, 1)


async def test_a_complete_request_gets_its_csv_products_and_one_completion_event(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    channel: aio_pika.abc.AbstractChannel,
    completions: str,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = await accepted_request(mongo, ns, [2, 1])
    batch = deliveries(processed(request_id, 1, 0), failed(request_id, 0, 1))
    await handle_image_outcomes(
        batch,
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )
    request = await repository.get_request(request_id)
    assert request is not None and request["status"] == "Pending"

    last = deliveries(processed(request_id, 0, 0))
    await handle_image_outcomes(
        last,
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )

    request = await repository.get_request(request_id)
    assert request is not None
    assert (request["status"], request["processed"], request["failed"]) == ("Completed", 2, 1)
    assert request["output_csv_path"] == f"outputs/output_{request_id}.csv"
    assert "outbox_pending" not in request
    rows = list(csv.reader(io.StringIO((files.root / request["output_csv_path"]).read_text())))
    assert [r[0] for r in rows[1:]] == ["1", "2"]
    assert rows[1][3] == f"http://status.test/files/images/{request_id}/0-0.jpg,"
    assert rows[1][4] == "http://origin.test/0-1.jpg -> http_404: the server answered 404 Not Found"
    products = (
        await mongo[ns.database][documents.PRODUCTS]
        .find(documents.products_of(request_id))
        .sort("_id", 1)
        .to_list()
    )
    assert [p["processed"] for p in products] == [True, True]
    assert products[0]["output_image_urls"] == [
        f"http://status.test/files/images/{request_id}/0-0.jpg",
        None,
    ]
    assert products[0]["errors"][1].startswith("http_404")
    assert await repository.rows_in_order(request_id) == []  # the staged rows are gone
    [message] = await take(channel, completions, 1)
    event = RequestCompleted.model_validate_json(message.body)
    assert (event.request_id, event.status, event.processed, event.failed) == (
        request_id,
        "Completed",
        2,
        1,
    )
    assert event.output_csv_url == f"http://status.test/files/outputs/output_{request_id}.csv"


async def test_a_request_whose_every_image_failed_is_failed(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = await accepted_request(mongo, ns, [1, 1])
    batch = deliveries(failed(request_id, 0, 0), failed(request_id, 1, 0))
    await handle_image_outcomes(
        batch,
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )
    request = await repository.get_request(request_id)
    assert request is not None
    assert (request["status"], request["processed"], request["failed"]) == ("Failed", 0, 2)


async def test_a_status_cached_while_images_are_outstanding_shows_the_completion_at_once(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = await accepted_request(mongo, ns, [2])
    batch = deliveries(failed(request_id, 0, 1))
    await handle_image_outcomes(
        batch,
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )
    before = await progress_cache.snapshot(request_id, None)
    assert before is not None and before.state == "Processing"

    last = deliveries(processed(request_id, 0, 0))
    await handle_image_outcomes(
        last,
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )

    after = await progress_cache.snapshot(request_id, None)
    assert after is not None and after.final
    status = json.loads(after.body)
    assert (status["status"], status["progress"]) == (
        "Completed",
        {"total": 2, "processed": 1, "failed": 1},
    )
    assert [(f["row"], f["position"], f["reason"]) for f in status["failures"]] == [
        (1, 2, "http_404")
    ]
    assert status["output_csv_url"] == f"http://status.test/files/outputs/output_{request_id}.csv"


async def test_completion_is_claimed_once_when_two_consumers_race(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    channel: aio_pika.abc.AbstractChannel,
    completions: str,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = await accepted_request(mongo, ns, [2])
    recorded = await repository.record_outcomes(
        [processed(request_id, 0, 0), processed(request_id, 0, 1)], datetime.now(UTC)
    )
    [progress] = recorded.progress
    await asyncio.gather(
        *(
            complete_request(
                progress,
                repository=repository,
                broker=broker,
                files=files,
                progress_cache=progress_cache,
                assembly=assembly,
            )
            for _ in range(4)
        )
    )
    await take(channel, completions, 1)
    source = await channel.declare_queue(completions, passive=True)
    assert await source.get(no_ack=True, fail=False) is None


async def claimed_but_unpublished(
    repository: StatusRepository, request_id: str, completed_at: datetime
) -> RequestCompleted:
    """A completion claimed at `completed_at` whose claimer died before publishing it."""
    event = RequestCompleted(
        request_id=request_id,
        status="Completed",
        total=1,
        processed=1,
        failed=0,
        output_csv_path="outputs/x.csv",
        output_csv_url="http://status.test/files/outputs/x.csv",
    )
    claim = {
        "status": "Completed",
        "completed_at": completed_at,
        "completion_event": event.model_dump(mode="json"),
    }
    assert await repository.claim_completion(request_id, claim)
    return event


async def test_a_completion_whose_claimer_died_before_publishing_is_relayed_once(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    channel: aio_pika.abc.AbstractChannel,
    completions: str,
) -> None:
    request_id = await accepted_request(mongo, ns, [1])
    event = await claimed_but_unpublished(
        repository, request_id, datetime.now(UTC) - timedelta(minutes=5)
    )
    assert await relay_pending_completions(repository=repository, broker=broker, grace=30) == 1
    assert await relay_pending_completions(repository=repository, broker=broker, grace=30) == 0
    [message] = await take(channel, completions, 1)
    assert RequestCompleted.model_validate_json(message.body).event_id == event.event_id


async def test_a_fresh_unpublished_completion_is_left_to_its_claimer(
    ns: Namespace, mongo: Mongo, repository: StatusRepository, broker: Broker
) -> None:
    request_id = await accepted_request(mongo, ns, [1])
    await claimed_but_unpublished(repository, request_id, datetime.now(UTC))
    assert await relay_pending_completions(repository=repository, broker=broker, grace=30) == 0


async def test_outcomes_wait_for_an_unreachable_database_instead_of_failing(
    broker: Broker, files: LocalFileStore
) -> None:
    unreachable: Mongo = AsyncMongoClient(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200&connectTimeoutMS=200"
    )
    repository = StatusRepository(unreachable["nowhere"])
    with pytest.raises(Unavailable):
        await handle_image_outcomes(
            deliveries(processed("0" * 32, 0, 0)),
            repository=repository,
            broker=broker,
            files=files,
            progress_cache=cache_over(repository, files),
            assembly=Assembly(100),
        )
    await unreachable.close()


async def test_a_redelivered_batch_keeps_each_row_once_and_recounts_them(
    ns: Namespace, mongo: Mongo, repository: StatusRepository
) -> None:
    request_id = uuid.uuid4().hex
    await mongo[ns.database][documents.REQUESTS].insert_one(
        documents.request_document(request_id, 3, 3, None, datetime.now(UTC))
    )
    first, rest = batch_of(request_id, [1, 1]), batch_of(request_id, [1, 1, 1], first_row=2)

    [progress] = (await repository.record_rows([first])).progress
    assert (progress.rows, progress.rows_recorded) == (3, 2)
    recorded = await repository.record_rows([first, rest])
    [progress] = recorded.progress
    assert [doc["_id"] for doc in recorded.new] == [documents.product_id(request_id, 2)]

    assert (progress.rows, progress.rows_recorded) == (3, 3)
    rows = await repository.rows_in_order(request_id)
    assert [r["row_index"] for r in rows] == [0, 1, 2]


async def test_rows_recorded_after_the_last_outcome_complete_the_request(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    channel: aio_pika.abc.AbstractChannel,
    completions: str,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = uuid.uuid4().hex
    await mongo[ns.database][documents.REQUESTS].insert_one(
        documents.request_document(request_id, 2, 2, None, datetime.now(UTC))
    )
    await handle_image_outcomes(
        deliveries(processed(request_id, 0, 0), processed(request_id, 1, 0)),
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )
    request = await repository.get_request(request_id)
    assert request is not None and request["status"] == "Pending"

    await handle_image_batches(
        deliveries(batch_of(request_id, [1, 1])),
        repository=repository,
        broker=broker,
        files=files,
        progress_cache=progress_cache,
        assembly=assembly,
    )

    request = await repository.get_request(request_id)
    assert request is not None and request["status"] == "Completed"
    rows = list(csv.reader(io.StringIO((files.root / request["output_csv_path"]).read_text())))
    assert [r[3] for r in rows[1:]] == [
        f"http://status.test/files/images/{request_id}/{row}-0.jpg" for row in (0, 1)
    ]
    [message] = await take(channel, completions, 1)
    assert RequestCompleted.model_validate_json(message.body).request_id == request_id


async def test_a_finished_rows_product_is_stored_before_its_request_completes(
    ns: Namespace,
    mongo: Mongo,
    repository: StatusRepository,
    broker: Broker,
    files: LocalFileStore,
    progress_cache: ProgressCache,
    assembly: Assembly,
) -> None:
    request_id = uuid.uuid4().hex
    await mongo[ns.database][documents.REQUESTS].insert_one(
        documents.request_document(request_id, 2, 3, None, datetime.now(UTC))
    )
    handlers: dict[str, Any] = {
        "repository": repository,
        "broker": broker,
        "files": files,
        "progress_cache": progress_cache,
        "assembly": assembly,
    }
    await handle_image_batches(deliveries(batch_of(request_id, [2, 1])), **handlers)
    products = mongo[ns.database][documents.PRODUCTS]

    await handle_image_outcomes(deliveries(processed(request_id, 1, 0)), **handlers)

    [early] = await products.find(documents.products_of(request_id)).to_list()
    assert early["_id"] == documents.product_id(request_id, 1)
    request = await repository.get_request(request_id)
    assert request is not None and request["status"] == "Pending"

    last = deliveries(processed(request_id, 0, 0), failed(request_id, 0, 1))
    await handle_image_outcomes(last, **handlers)

    request = await repository.get_request(request_id)
    assert request is not None and request["status"] == "Completed"
    stored = await products.find(documents.products_of(request_id)).sort("_id", 1).to_list()
    assert [p["row_index"] for p in stored] == [0, 1]
    assert stored[0]["errors"][1].startswith("http_404")
    rows = list(csv.reader(io.StringIO((files.root / request["output_csv_path"]).read_text())))
    assert [r[3] for r in rows[1:]] == [
        f"http://status.test/files/images/{request_id}/0-0.jpg,",
        f"http://status.test/files/images/{request_id}/1-0.jpg",
    ]
