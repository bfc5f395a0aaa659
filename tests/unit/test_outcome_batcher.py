"""The processor's outcome batcher: outcomes that finish together share a message, a lone one
goes at once, and each publisher learns whether the broker took its outcome."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from imgpipe_contracts.events import ImageFailed, ImageOutcomes, ImageProcessed, RequestAccepted
from imgpipe_processor.outcomes import OutcomeBatcher, Slots
from tests.unit.fakes import FakeBroker


def processed(request_id: str, row: int) -> ImageProcessed:
    return ImageProcessed(
        request_id=request_id,
        row_index=row,
        position=0,
        input_url=f"https://shop.test/{row}.jpg",
        output_key=f"images/{request_id}/{row:06d}-01-x.jpg",
        output_url=f"http://files.test/{row}.jpg",
        width=1,
        height=1,
        source_format="JPEG",
        bytes_in=10,
        bytes_out=5,
    )


def failed(request_id: str, row: int) -> ImageFailed:
    return ImageFailed(
        request_id=request_id,
        row_index=row,
        position=0,
        input_url=f"https://shop.test/{row}.jpg",
        reason="http_404",
        detail="gone",
    )


async def busy_slots(count: int) -> Slots:
    slots = Slots(32)
    for _ in range(count):
        await slots.__aenter__()
    return slots


async def test_a_lone_outcome_is_published_at_once_in_a_message_of_its_own() -> None:
    broker = FakeBroker()
    batcher = OutcomeBatcher(broker, await busy_slots(0), max_wait=3600)
    rid = uuid.uuid4().hex

    await asyncio.wait_for(batcher.publish(processed(rid, 0)), timeout=5)

    [message] = broker.published
    assert isinstance(message, ImageOutcomes)
    assert [o.row_index for o in message.outcomes] == [0]


async def test_outcomes_handed_over_in_one_turn_with_no_image_in_progress_share_a_message() -> None:
    # Jobs that need no work (a URL met earlier in the request) all finish in one turn of
    # the loop, each leaving its slot before it hands over its outcome.
    broker = FakeBroker()
    batcher = OutcomeBatcher(broker, await busy_slots(0), max_wait=3600)
    rid = uuid.uuid4().hex

    await asyncio.wait_for(
        asyncio.gather(*(batcher.publish(processed(rid, row)) for row in range(3))), timeout=5
    )

    [message] = broker.published
    assert isinstance(message, ImageOutcomes)
    assert sorted(o.row_index for o in message.outcomes) == [0, 1, 2]


async def test_outcomes_finishing_together_share_one_message_per_request() -> None:
    broker = FakeBroker()
    # One more image still being worked on: these three wait for the window, together.
    batcher = OutcomeBatcher(broker, await busy_slots(1), max_wait=0.05)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex

    await asyncio.gather(
        batcher.publish(processed(first, 0)),
        batcher.publish(failed(first, 1)),
        batcher.publish(processed(second, 0)),
    )

    messages = [m for m in broker.published if isinstance(m, ImageOutcomes)]
    assert len(messages) == 2
    by_request = {m.request_id: m for m in messages}
    assert [o.row_index for o in by_request[first].processed] == [0]
    assert [o.row_index for o in by_request[first].failed] == [1]
    assert [o.row_index for o in by_request[second].outcomes] == [0]


async def test_a_full_batch_goes_without_waiting_for_the_window() -> None:
    broker = FakeBroker()
    batcher = OutcomeBatcher(broker, await busy_slots(32), max_outcomes=2, max_wait=3600)
    rid = uuid.uuid4().hex

    await asyncio.wait_for(
        asyncio.gather(batcher.publish(processed(rid, 0)), batcher.publish(processed(rid, 1))),
        timeout=5,
    )

    [message] = broker.published
    assert isinstance(message, ImageOutcomes) and len(message.outcomes) == 2


async def test_every_outcome_of_a_message_the_broker_refused_gets_the_error() -> None:
    broker = FakeBroker()
    broker.broken = ConnectionError("broker gone")
    batcher = OutcomeBatcher(broker, await busy_slots(2), max_wait=0.05)
    rid = uuid.uuid4().hex

    results = await asyncio.gather(
        batcher.publish(processed(rid, 0)),
        batcher.publish(processed(rid, 1)),
        return_exceptions=True,
    )

    assert [type(r) for r in results] == [ConnectionError, ConnectionError]


async def test_an_event_that_is_not_an_image_outcome_is_published_as_it_is() -> None:
    broker = FakeBroker()
    batcher = OutcomeBatcher(broker, await busy_slots(4), max_wait=3600)
    accepted = RequestAccepted(
        request_id=uuid.uuid4().hex, rows=1, images=1, status_url="http://s.test/status/x"
    )

    await asyncio.wait_for(batcher.publish(accepted), timeout=5)

    assert broker.published == [accepted]


@pytest.mark.parametrize("busy", [0, 1])
async def test_slots_count_the_images_in_progress(busy: int) -> None:
    slots = Slots(4)
    for _ in range(busy):
        await slots.__aenter__()
    assert slots.busy == busy
    async with slots:
        assert slots.busy == busy + 1
    assert slots.busy == busy


async def test_send_soon_sends_what_waits_without_waiting_for_the_window() -> None:
    broker = FakeBroker()
    batcher = OutcomeBatcher(broker, await busy_slots(4), max_wait=3600)
    rid = uuid.uuid4().hex

    async def last_image() -> None:
        batcher.send_soon()  # as a batch's last image does, just before handing its outcome
        await batcher.publish(processed(rid, 1))

    await asyncio.wait_for(asyncio.gather(batcher.publish(processed(rid, 0)), last_image()), 5)

    [message] = broker.published
    assert isinstance(message, ImageOutcomes)
    assert sorted(o.row_index for o in message.outcomes) == [0, 1]
