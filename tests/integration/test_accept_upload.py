"""Accepting a large upload: one request document, and every row queued once, in batches that
reach both the processor and the status service."""

from __future__ import annotations

from typing import Any

import aio_pika
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageBatchRequested
from imgpipe_contracts.topology import PROCESSOR_IMAGE_REQUESTED, STATUS_IMAGE_BATCH
from imgpipe_ingest.csv_format import ProductRow
from imgpipe_ingest.repository import RequestRepository
from imgpipe_ingest.service import BATCH_IMAGES, accept_upload
from imgpipe_runtime.broker import Broker
from tests.conftest import Namespace
from tests.integration.amqp import depth, take

ROWS = BATCH_IMAGES * 40 + 17  # 41 batches, the last one short


async def test_every_row_of_a_large_upload_is_queued_once_to_the_processor_and_status(
    ns: Namespace,
    broker: Broker,
    mongo: AsyncMongoClient[dict[str, Any]],
    channel: aio_pika.abc.AbstractChannel,
) -> None:
    rows = [
        ProductRow(
            line=i + 2,
            serial_number=i + 1,
            product_name=f"SKU{i + 1}",
            urls=(f"https://shop.test/{i}.jpg",),
        )
        for i in range(ROWS)
    ]
    repository = RequestRepository(mongo[ns.database])
    request_id = await accept_upload(
        rows, None, repository=repository, broker=broker, public_base_url="http://s.test"
    )

    request = await mongo[ns.database][documents.REQUESTS].find_one({"_id": request_id})
    assert request is not None
    assert (request["rows"], request["rows_recorded"], request["total"]) == (ROWS, 0, ROWS)
    for spec in (PROCESSOR_IMAGE_REQUESTED, STATUS_IMAGE_BATCH):
        queue = broker.topology.queue(spec)
        messages = await take(channel, queue, 41, within=60)
        batches = [ImageBatchRequested.model_validate_json(m.body) for m in messages]
        assert {m.type for m in messages} == {"image.requested.batch"}
        assert all(b.request_id == request_id and b.images <= BATCH_IMAGES for b in batches)
        row_indexes = sorted(row.row_index for b in batches for row in b.rows)
        assert row_indexes == list(range(ROWS))
        assert all(
            row.urls == [f"https://shop.test/{row.row_index}.jpg"]
            and row.serial_number == row.row_index + 1
            for b in batches
            for row in b.rows
        )
        assert await depth(channel, queue) == 0
