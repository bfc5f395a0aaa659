"""Domain events: the only data that crosses service lines.

Every event travels on the `imgpipe.events` topic exchange with its `routing_key` and a JSON body
made from one of these models. Readers ignore fields they do not know, so a producer may add
fields without breaking older consumers; removing or changing one needs a new `schema_version`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar, Literal

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

RequestState = Literal["Pending", "Processing", "Completed", "Failed"]
# How a processed image's output came from earlier work (None: made from these bytes now):
# fresh: no request to the origin (the same URL earlier in the request, or within max-age);
# not_modified: the origin answered 304; same_bytes: downloaded, but the bytes were known.
Reuse = Literal["not_modified", "same_bytes", "fresh"]
REUSE_KINDS: tuple[Reuse, ...] = ("not_modified", "same_bytes", "fresh")
# A request in one of these states is done: nothing about it changes any more.
FINAL_STATES: tuple[RequestState, ...] = ("Completed", "Failed")


def _new_event_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    routing_key: ClassVar[str]

    event_id: str = Field(default_factory=_new_event_id)
    occurred_at: datetime = Field(default_factory=_now)
    schema_version: int = SCHEMA_VERSION
    request_id: str

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json") | {"event_type": self.routing_key})


class ImageRef(BaseModel):
    """Where one image sits in the uploaded file: row (0-based, file order) and URL position."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    row_index: int = Field(ge=0)
    position: int = Field(ge=0)

    @property
    def image_id(self) -> str:
        return f"{self.request_id}:{self.row_index}:{self.position}"


class RequestAccepted(Event):
    """An upload passed validation; its images have been queued."""

    routing_key: ClassVar[str] = "request.accepted"

    rows: int
    images: int
    webhook_url: str | None = None
    status_url: str
    tenant: str | None = Field(default=None, description="Who uploaded it (None: AUTH_MODE=off).")


class ImageRequested(Event, ImageRef):
    """A command in event clothing: download and recompress this image."""

    routing_key: ClassVar[str] = "image.requested"

    serial_number: int
    product_name: str
    url: str
    tenant: str | None = Field(
        default=None, description="Who uploaded it: earlier work is reused within one tenant."
    )


class ProductJobs(BaseModel):
    """One product row of an upload and its image URLs, in the file's order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    row_index: int = Field(ge=0)
    serial_number: int
    product_name: str
    urls: list[str]


class ImageBatchRequested(Event):
    """Consecutive rows of one request in one message: their images to process, and the
    rows themselves for the status service to record as products.

    One message per batch instead of one per image: an AMQP publish costs about as much CPU
    as parsing a row, so per-image messages capped ingest at a few thousand rows/s."""

    routing_key: ClassVar[str] = "image.requested.batch"

    rows: list[ProductJobs]
    tenant: str | None = Field(default=None, description="Who uploaded it (None: AUTH_MODE=off).")

    def jobs(self) -> Iterator[ImageRequested]:
        """The batch as single image jobs, in file order."""
        for row in self.rows:
            for position, url in enumerate(row.urls):
                yield ImageRequested(
                    event_id=f"{self.event_id}:{row.row_index}:{position}",
                    occurred_at=self.occurred_at,
                    request_id=self.request_id,
                    row_index=row.row_index,
                    position=position,
                    serial_number=row.serial_number,
                    product_name=row.product_name,
                    url=url,
                    tenant=self.tenant,
                )

    @property
    def images(self) -> int:
        return sum(len(row.urls) for row in self.rows)


class ImageProcessed(Event, ImageRef):
    """An image was recompressed and stored (travels inside an ImageOutcomes)."""

    routing_key: ClassVar[str] = "image.processed"

    input_url: str
    output_key: str
    output_url: str
    width: int
    height: int
    source_format: str
    bytes_in: int
    bytes_out: int
    reused: Reuse | None = Field(
        default=None,
        description="How the output came from earlier work: fresh (no request to the origin), "
        "not_modified (a 304), same_bytes (downloaded, known bytes); null: made now.",
    )


class ImageFailed(Event, ImageRef):
    """An image could not be processed; `reason` is a short machine-readable code (travels
    inside an ImageOutcomes)."""

    routing_key: ClassVar[str] = "image.failed"

    input_url: str
    reason: str
    detail: str
    attempts: int = 1


class ImageOutcomes(Event):
    """Outcomes of several images of one request in one message: the processor gathers what
    finishes within a short window, because a message per image cost more CPU (in the
    broker, the processor and status) than everything else done per image but the codec."""

    routing_key: ClassVar[str] = "image.outcomes"

    processed: list[ImageProcessed] = Field(default_factory=list)
    failed: list[ImageFailed] = Field(default_factory=list)

    @property
    def outcomes(self) -> list[ImageProcessed | ImageFailed]:
        return [*self.processed, *self.failed]


class RequestCompleted(Event):
    """Every image of a request has an outcome and the output CSV is written."""

    routing_key: ClassVar[str] = "request.completed"

    status: RequestState
    total: int
    processed: int
    failed: int
    output_csv_path: str
    output_csv_url: str
    webhook_url: str | None = None


class WebhookAttempt(BaseModel):
    """Which webhook call, to where, after how many attempts, and what the receiver answered."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    webhook_id: str
    url: str
    # Accepts `attempt` too: WebhookAttemptFailed carried that name in schema version 1.
    attempts: int = Field(validation_alias=AliasChoices("attempts", "attempt"))
    status_code: int | None = None


class WebhookDelivered(Event, WebhookAttempt):
    """The request's webhook answered 2xx."""

    routing_key: ClassVar[str] = "webhook.delivered"

    status_code: int


class WebhookAttemptFailed(Event, WebhookAttempt):
    """One webhook attempt failed; another will follow after the next retry delay."""

    routing_key: ClassVar[str] = "webhook.attempt_failed"

    reason: str


class WebhookFailed(Event, WebhookAttempt):
    """The request's webhook could not be delivered; no more attempts will be made."""

    routing_key: ClassVar[str] = "webhook.failed"

    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.routing_key: cls
    for cls in (
        RequestAccepted,
        ImageRequested,
        ImageBatchRequested,
        ImageOutcomes,
        RequestCompleted,
        WebhookDelivered,
        WebhookAttemptFailed,
        WebhookFailed,
    )
}


def parse_event(routing_key: str, body: bytes) -> Event:
    """Decode a message body into the model its routing key names (raises on junk)."""
    try:
        model = EVENT_TYPES[routing_key]
    except KeyError:
        raise ValueError(f"unknown routing key {routing_key!r}") from None
    return model.model_validate_json(body)
