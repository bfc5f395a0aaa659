"""Accepting a large upload: products written and jobs queued chunk by chunk, nothing missed."""

from __future__ import annotations

from typing import Any

import aio_pika
from pymongo import AsyncMongoClient

from imgpipe_contracts import documents
from imgpipe_contracts.events import ImageRequested
from imgpipe_contracts.topology import PROCESSOR_IMAGE_REQUESTED
from imgpipe_ingest.csv_format import ProductRow
from imgpipe_ingest.repository import RequestRepository
from imgpipe_ingest.service import CHUNK_ROWS, accept_upload
from imgpipe_runtime.broker import Broker
from tests.conftest import Namespace
from tests.integration.amqp import take

ROWS = CHUNK_ROWS * 2 + 345  # three chunks, the last one short


async def test_every_row_of_a_multi_chunk_upload_is_recorded_and_queued_once(
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

    products = (
        await mongo[ns.database][documents.PRODUCTS]
        .find(documents.products_of(request_id))
        .sort("_id", 1)
        .to_list()
    )
    assert [p["row_index"] for p in products] == list(range(ROWS))
    assert [p["serial_number"] for p in products] == list(range(1, ROWS + 1))

    jobs = await take(channel, broker.topology.queue(PROCESSOR_IMAGE_REQUESTED), ROWS, within=60)
    events = [ImageRequested.model_validate_json(m.body) for m in jobs]
    assert sorted(e.row_index for e in events) == list(range(ROWS))
    assert all(e.url == f"https://shop.test/{e.row_index}.jpg" for e in events)
    queue = await channel.declare_queue(
        broker.topology.queue(PROCESSOR_IMAGE_REQUESTED), passive=True
    )
    assert queue.declaration_result.message_count == 0
