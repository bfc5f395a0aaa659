"""A batch of image jobs: every job handled on its own, a failed one moved to the retry queues
alone, the batch done only when each job has an outcome or has been moved."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from imgpipe_contracts.events import (
    Event,
    ImageBatchRequested,
    ImageRequested,
    ProductJobs,
    RequestAccepted,
)
from imgpipe_processor.handlers import Working, handle_image_jobs
from imgpipe_processor.outcomes import Slots
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.retry import Reject, RetryLater


class Jobs:
    """`handle_one` and `defer` as fakes: which jobs ran, which failed and where they went."""

    def __init__(self, per_batch: int = 8, slots: int = 32) -> None:
        self.handled: list[tuple[int, int, int]] = []
        self.failing: dict[tuple[int, int], Exception] = {}
        self.deferred: list[tuple[tuple[int, int], str, int]] = []
        self.defer_error: Exception | None = None
        self.running = 0
        self.most_running = 0
        self.per_batch = per_batch
        self.slots = Slots(slots)
        # When each finished() came: how many jobs had been handled by then.
        self.finished_after: list[int] = []

    async def handle_one(self, delivery: Delivery, working: Working) -> None:
        job = delivery.event
        assert isinstance(job, ImageRequested)
        async with working:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            await asyncio.sleep(0)
            self.running -= 1
            self.handled.append((job.row_index, job.position, delivery.attempt))
        error = self.failing.get((job.row_index, job.position))
        if error is not None:
            raise error

    async def defer(self, job: ImageRequested, exc: Exception, attempt: int) -> None:
        if self.defer_error is not None:
            raise self.defer_error
        self.deferred.append(((job.row_index, job.position), str(exc), attempt))

    async def run(self, event: Event, attempt: int = 1) -> None:
        await handle_image_jobs(
            Delivery(event, attempt, 4),
            handle_one=self.handle_one,
            defer=self.defer,
            slots=self.slots,
            per_batch=self.per_batch,
            finished=lambda: self.finished_after.append(len(self.handled)),
        )


def batch(rows: int = 3, images_per_row: int = 2) -> ImageBatchRequested:
    return ImageBatchRequested(
        request_id=uuid.uuid4().hex,
        rows=[
            ProductJobs(
                row_index=10 + r,
                serial_number=11 + r,
                product_name=f"SKU{11 + r}",
                urls=[f"https://shop.test/{r}-{p}.jpg" for p in range(images_per_row)],
            )
            for r in range(rows)
        ],
    )


def single_job(row_index: int) -> ImageRequested:
    """One image job, as a retry queue holds it."""
    return ImageRequested(
        request_id=uuid.uuid4().hex,
        row_index=row_index,
        position=0,
        serial_number=row_index + 1,
        product_name=f"SKU{row_index + 1}",
        url=f"https://shop.test/{row_index}.jpg",
    )


async def test_every_image_of_a_batch_is_handled_once_as_a_job_of_its_own() -> None:
    jobs = Jobs()

    await jobs.run(batch(rows=3, images_per_row=2), attempt=2)

    assert sorted(jobs.handled) == [(r, p, 2) for r in (10, 11, 12) for p in (0, 1)]
    assert jobs.deferred == []


async def test_a_failing_image_is_deferred_alone_with_the_batchs_attempt() -> None:
    jobs = Jobs()
    jobs.failing[(11, 1)] = RetryLater("http_503: busy")

    await jobs.run(batch())

    assert len(jobs.handled) == 6
    assert jobs.deferred == [((11, 1), "http_503: busy", 1)]


async def test_a_batch_whose_failed_image_cannot_be_deferred_fails_after_the_others_ran() -> None:
    jobs = Jobs()
    jobs.failing[(10, 0)] = RetryLater("timeout")
    jobs.defer_error = ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await jobs.run(batch())

    assert len(jobs.handled) == 6


async def test_a_batch_has_at_most_per_batch_images_in_progress() -> None:
    jobs = Jobs(per_batch=3)

    await jobs.run(batch(rows=10, images_per_row=2))

    assert len(jobs.handled) == 20
    assert jobs.most_running == 3


async def test_a_single_job_from_a_retry_queue_is_handled_as_it_is() -> None:
    jobs = Jobs()
    await jobs.run(single_job(row_index=4), attempt=3)

    assert jobs.handled == [(4, 0, 3)]


async def test_an_event_that_is_not_an_image_job_is_rejected() -> None:
    jobs = Jobs()
    accepted = RequestAccepted(
        request_id=uuid.uuid4().hex, rows=1, images=1, status_url="http://s.test/status/x"
    )

    with pytest.raises(Reject):
        await jobs.run(accepted)

    assert jobs.handled == []


async def test_the_outcomes_are_sent_at_once_when_the_last_image_of_a_batch_is_done() -> None:
    jobs = Jobs(per_batch=2)
    jobs.failing[(12, 1)] = RetryLater("timeout")

    await jobs.run(batch(rows=3, images_per_row=2))

    # Once, and only when the last image was done (a failed one too): not one per image.
    assert jobs.finished_after == [6]


async def test_a_single_job_sends_its_outcome_at_once_too() -> None:
    jobs = Jobs()
    await jobs.run(single_job(row_index=0))

    assert jobs.finished_after == [1]
