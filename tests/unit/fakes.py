"""In-memory fakes of the ports the handlers take (the file store, the broker), and an event
that no handler under test takes."""

from __future__ import annotations

import uuid

from imgpipe_contracts.events import Event, ImageFailed

FILES = "https://files.test/files"


class FakeFiles:
    """A FileStore in a dict; `broken` makes every write raise it, `down` the readiness check.
    Writes are noted in `log`, shared with the other fakes to check the order of effects."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.stored: dict[str, tuple[bytes, str]] = {}
        self.broken: Exception | None = None
        self.down: Exception | None = None

    async def url_for(self, key: str) -> str:
        return f"{FILES}/{key}"

    async def ready(self) -> None:
        if self.down is not None:
            raise self.down

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        self.log.append(f"write {key}")
        if self.broken is not None:
            raise self.broken
        self.stored[key] = (data, content_type)

    async def read(self, key: str) -> bytes:
        return self.stored[key][0]


class FakeBroker:
    """Publishes into a list; `broken` makes publishing raise it."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.published: list[Event] = []
        self.broken: Exception | None = None

    async def publish(self, event: Event) -> None:
        self.log.append(f"publish {event.routing_key}")
        if self.broken is not None:
            raise self.broken
        self.published.append(event)


def unrelated_event() -> Event:
    """An event of another queue, which a handler must reject."""
    return ImageFailed(
        request_id=uuid.uuid4().hex,
        row_index=0,
        position=0,
        input_url="https://shop.test/a.png",
        reason="http_404",
        detail="gone",
    )
