"""The processor's job handler, with in-memory fakes of the download, the encoder, the file store
and the broker: one ImageRequested in, one ImageProcessed or ImageFailed (or a retry) out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest

from imgpipe_contracts.events import Event, ImageFailed, ImageProcessed, ImageRequested
from imgpipe_processor.fetch import DownloadFailed, Fetched
from imgpipe_processor.handlers import handle_image_requested
from imgpipe_processor.keys import image_key
from imgpipe_processor.reuse import Maker, make_anew
from imgpipe_processor.transform import ImageRejected, Recompressed
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.files import StoreUnavailable
from imgpipe_runtime.retry import Reject, RetryLater, Unavailable
from tests.unit.fakes import FakeBroker, FakeFiles, unrelated_event

SOURCE = b"\x89PNG fake source bytes, 32 long"
JPEG = b"\xff\xd8\xff fake jpeg\xff\xd9"


class FakeFetch:
    """Answers with `data`, or raises `error`; remembers the URLs asked for."""

    def __init__(self, log: list[str], data: bytes = SOURCE) -> None:
        self.log = log
        self.data = data
        self.error: Exception | None = None
        self.urls: list[str] = []

    async def __call__(self, url: str, conditions: dict[str, str] | None = None) -> Fetched:
        self.log.append(f"fetch {url}")
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return Fetched(self.data, {})


class FakeRecompress:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.result = Recompressed(width=640, height=480, source_format="PNG", jpeg=JPEG)
        self.error: Exception | None = None
        self.inputs: list[bytes] = []

    async def __call__(self, data: bytes) -> Recompressed:
        self.log.append("recompress")
        self.inputs.append(data)
        if self.error is not None:
            raise self.error
        return self.result


class World:
    """The handler's ports, sharing one log so the order of effects can be checked (the
    processor's slot too: when the job takes it and gives it back)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.fetch = FakeFetch(self.log)
        self.recompress = FakeRecompress(self.log)
        self.files = FakeFiles(self.log)
        self.broker = FakeBroker(self.log)

    @asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        self.log.append("slot taken")
        try:
            yield
        finally:
            self.log.append("slot given back")

    async def handle(self, delivery: Delivery) -> None:
        await handle_image_requested(
            delivery,
            self.working(),
            make=partial(make_anew, fetch=self.fetch, make=Maker(self.recompress, self.files)),
            files=self.files,
            broker=self.broker,
        )


@pytest.fixture
def world() -> World:
    return World()


def job(
    request_id: str | None = None, url: str = "https://shop.test/img/cat.png"
) -> ImageRequested:
    return ImageRequested(
        request_id=request_id or uuid.uuid4().hex,
        row_index=2,
        position=1,
        serial_number=3,
        product_name="SKU3",
        url=url,
    )


def delivery(event: Event, attempt: int = 1, max_attempts: int = 3) -> Delivery:
    return Delivery(event, attempt, max_attempts)


# --- success ----------------------------------------------------------------------------------


async def test_a_processed_job_stores_the_jpeg_under_the_jobs_key_as_image_jpeg(
    world: World,
) -> None:
    requested = job()

    await world.handle(delivery(requested))

    key = f"images/{requested.request_id}/000003-02-cat.jpg"
    assert key == image_key(requested.request_id, 2, 1, requested.url)
    assert world.files.stored == {key: (JPEG, "image/jpeg")}
    assert world.fetch.urls == [requested.url]
    assert world.recompress.inputs == [SOURCE]


async def test_a_processed_job_publishes_one_image_processed_describing_the_stored_file(
    world: World,
) -> None:
    requested = job()

    await world.handle(delivery(requested))

    [event] = world.broker.published
    assert isinstance(event, ImageProcessed)
    key = image_key(requested.request_id, 2, 1, requested.url)
    assert event.request_id == requested.request_id
    assert (event.row_index, event.position) == (2, 1)
    assert event.input_url == requested.url
    assert event.output_key == key
    assert event.output_url == await world.files.url_for(key)
    assert (event.width, event.height, event.source_format) == (640, 480, "PNG")
    assert event.bytes_in == len(SOURCE)
    assert event.bytes_out == len(JPEG)


async def test_the_file_is_written_before_the_image_processed_event_is_published(
    world: World,
) -> None:
    requested = job()

    await world.handle(delivery(requested))

    key = image_key(requested.request_id, 2, 1, requested.url)
    assert [line for line in world.log if not line.startswith("slot")] == [
        f"fetch {requested.url}",
        "recompress",
        f"write {key}",
        "publish image.processed",
    ]


async def test_the_slot_is_given_back_before_the_outcome_is_published(world: World) -> None:
    """An outcome waiting for its message (and its confirm) holds no slot: the next image
    can be downloaded meanwhile."""
    await world.handle(delivery(job()))
    world.fetch.error = DownloadFailed("http_404", "gone")
    await world.handle(delivery(job()))

    for outcome in ("processed", "failed"):
        publish = world.log.index(f"publish image.{outcome}")
        assert world.log[publish - 1] == "slot given back"
        world.log = world.log[publish + 1 :]


async def test_a_failing_file_write_raises_and_publishes_nothing(world: World) -> None:
    world.files.broken = OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await world.handle(delivery(job()))

    assert world.broker.published == []


async def test_a_job_waits_for_a_file_store_that_is_down_before_downloading_anything(
    world: World,
) -> None:
    world.files.down = StoreUnavailable("S3 did not answer")

    with pytest.raises(Unavailable, match="file store unavailable"):
        await world.handle(delivery(job(), attempt=3, max_attempts=3))

    assert world.log == ["slot taken", "slot given back"]
    assert world.broker.published == []


@pytest.mark.parametrize("attempt", [1, 3])
async def test_an_unavailable_file_store_waits_without_using_an_attempt_or_failing_the_image(
    world: World, attempt: int
) -> None:
    world.files.broken = StoreUnavailable("S3 answered 503 SlowDown")

    with pytest.raises(Unavailable, match="503 SlowDown"):
        await world.handle(delivery(job(), attempt=attempt, max_attempts=3))

    assert world.broker.published == []


# --- download failures ------------------------------------------------------------------------


async def test_a_transient_download_failure_is_retried_with_the_retry_after_hint(
    world: World,
) -> None:
    world.fetch.error = DownloadFailed(
        "http_503", "the server answered 503", transient=True, retry_after=30.0
    )

    with pytest.raises(RetryLater) as raised:
        await world.handle(delivery(job(), attempt=1, max_attempts=3))

    assert raised.value.delay == 30.0
    assert "http_503" in str(raised.value)
    assert world.broker.published == []
    assert world.files.stored == {}


async def test_a_transient_download_failure_on_the_last_attempt_publishes_image_failed(
    world: World,
) -> None:
    world.fetch.error = DownloadFailed("timeout", "the server did not answer", transient=True)
    requested = job()

    await world.handle(delivery(requested, attempt=3, max_attempts=3))

    [event] = world.broker.published
    assert isinstance(event, ImageFailed)
    assert event.reason == "timeout"
    assert event.detail == "the server did not answer"
    assert event.attempts == 3
    assert event.input_url == requested.url
    assert (event.request_id, event.row_index, event.position) == (requested.request_id, 2, 1)
    assert world.files.stored == {}


async def test_a_permanent_download_failure_publishes_image_failed_at_once_and_stores_nothing(
    world: World,
) -> None:
    world.fetch.error = DownloadFailed("http_404", "the server answered 404 Not Found")

    await world.handle(delivery(job(), attempt=1, max_attempts=3))

    [event] = world.broker.published
    assert isinstance(event, ImageFailed)
    assert event.reason == "http_404"
    assert event.detail == "the server answered 404 Not Found"
    assert event.attempts == 1
    assert world.files.stored == {}
    assert world.recompress.inputs == []


# --- decoding ---------------------------------------------------------------------------------


async def test_an_image_the_encoder_rejects_publishes_image_failed_with_its_reason(
    world: World,
) -> None:
    world.recompress.error = ImageRejected("not_an_image", "the content is not a supported image")

    await world.handle(delivery(job(), attempt=2, max_attempts=3))

    [event] = world.broker.published
    assert isinstance(event, ImageFailed)
    assert event.reason == "not_an_image"
    assert event.detail == "the content is not a supported image"
    assert event.attempts == 2
    assert world.files.stored == {}


# --- messages that can never succeed ----------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    ["abc123", "../../etc/passwd", "0" * 31 + "g", "0" * 32 + "/x"],
)
async def test_a_request_id_that_is_not_32_hex_digits_is_rejected_without_fetching(
    world: World, request_id: str
) -> None:
    with pytest.raises(Reject):
        await world.handle(delivery(job(request_id=request_id)))

    assert world.fetch.urls == []
    assert world.broker.published == []
    assert world.files.stored == {}


async def test_an_event_that_is_not_an_image_request_is_rejected(world: World) -> None:
    other = unrelated_event()

    with pytest.raises(Reject):
        await world.handle(delivery(other))

    assert world.log == []
