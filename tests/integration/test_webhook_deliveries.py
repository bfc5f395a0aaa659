"""The notifier's record of delivered webhooks, on the real database: what keeps a completion
that comes back from being called back twice."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient

from imgpipe_notifier.repository import DeliveryRepository
from tests.conftest import Namespace

Mongo = AsyncMongoClient[dict[str, object]]


async def test_a_recorded_delivery_is_found_by_its_webhook_id(ns: Namespace, mongo: Mongo) -> None:
    deliveries = DeliveryRepository(mongo[ns.database])
    webhook_id, request_id = uuid.uuid4().hex, uuid.uuid4().hex

    assert await deliveries.delivered(webhook_id) is None
    await deliveries.record(webhook_id, request_id, "https://hooks.test/a", 2, 204)

    found = await deliveries.delivered(webhook_id)
    assert found is not None
    assert (found["request_id"], found["url"], found["attempts"], found["status_code"]) == (
        request_id,
        "https://hooks.test/a",
        2,
        204,
    )


async def test_recording_a_delivery_again_keeps_the_first_record(
    ns: Namespace, mongo: Mongo
) -> None:
    deliveries = DeliveryRepository(mongo[ns.database])
    webhook_id = uuid.uuid4().hex

    await deliveries.record(webhook_id, "r", "https://hooks.test/first", 1, 200)
    await deliveries.record(webhook_id, "r", "https://hooks.test/second", 3, 204)

    found = await deliveries.delivered(webhook_id)
    assert found is not None and (found["url"], found["attempts"]) == (
        "https://hooks.test/first",
        1,
    )
