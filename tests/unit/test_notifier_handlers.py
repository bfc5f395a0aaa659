"""The notifier's handler, with a fake POST and an in-memory broker: one RequestCompleted becomes
one webhook attempt, and each attempt's outcome is announced for the status service."""

from __future__ import annotations

import json
import uuid

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from imgpipe_contracts.events import (
    Event,
    RequestCompleted,
    WebhookAttemptFailed,
    WebhookDelivered,
    WebhookFailed,
)
from imgpipe_contracts.webhooks import WebhookPayload
from imgpipe_notifier.delivery import Attempt
from imgpipe_notifier.handlers import WebhookNotDelivered, handle_request_completed
from imgpipe_runtime.consumer import Delivery
from imgpipe_runtime.mongo import Document
from imgpipe_runtime.retry import Reject
from tests.unit.fakes import FakeBroker, unrelated_event

HOOK = "https://receiver.test/hooks/imgpipe"
DEFAULT = "https://default.test/hook"


class FakePost:
    """Answers every POST with `answer`; remembers (url, webhook_id, body)."""

    def __init__(self, answer: Attempt) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, url: str, webhook_id: str, body: str) -> Attempt:
        self.calls.append((url, webhook_id, body))
        return self.answer


class FakeDeliveries:
    """DeliveryRepository over a dict; `broken` makes every call raise it."""

    def __init__(self) -> None:
        self.records: dict[str, Document] = {}
        self.broken: Exception | None = None

    async def delivered(self, webhook_id: str) -> Document | None:
        if self.broken is not None:
            raise self.broken
        return self.records.get(webhook_id)

    async def record(
        self, webhook_id: str, request_id: str, url: str, attempts: int, status_code: int
    ) -> None:
        if self.broken is not None:
            raise self.broken
        self.records.setdefault(
            webhook_id,
            {
                "request_id": request_id,
                "url": url,
                "attempts": attempts,
                "status_code": status_code,
            },
        )


DELIVERED = Attempt(True, 204, "delivered")
SERVER_ERROR = Attempt(False, 500, "http_500")


def completed(webhook_url: str | None = HOOK) -> RequestCompleted:
    request_id = uuid.uuid4().hex
    return RequestCompleted(
        request_id=request_id,
        status="Completed",
        total=3,
        processed=2,
        failed=1,
        output_csv_path=f"outputs/output_{request_id}.csv",
        output_csv_url=f"https://files.test/files/outputs/output_{request_id}.csv",
        webhook_url=webhook_url,
    )


async def handle(
    event: Event,
    post: FakePost,
    broker: FakeBroker,
    *,
    attempt: int = 1,
    max_attempts: int = 4,
    default_url: str | None = None,
    deliveries: FakeDeliveries | None = None,
) -> None:
    await handle_request_completed(
        Delivery(event, attempt, max_attempts),
        post=post,
        broker=broker,
        deliveries=deliveries or FakeDeliveries(),
        default_url=default_url,
    )


# --- delivered --------------------------------------------------------------------------------


async def test_a_2xx_answer_publishes_webhook_delivered_with_the_delivery_attempt() -> None:
    event, post, broker = completed(), FakePost(DELIVERED), FakeBroker()

    await handle(event, post, broker, attempt=2, max_attempts=4)

    [outcome] = broker.published
    assert isinstance(outcome, WebhookDelivered)
    assert outcome.request_id == event.request_id
    assert outcome.webhook_id == event.event_id
    assert outcome.url == HOOK
    assert outcome.attempts == 2
    assert outcome.status_code == 204


async def test_the_body_is_the_webhook_payload_of_the_event_and_the_id_is_its_event_id() -> None:
    event, post, broker = completed(), FakePost(DELIVERED), FakeBroker()

    await handle(event, post, broker)

    [(url, webhook_id, body)] = post.calls
    assert url == HOOK
    assert webhook_id == event.event_id
    assert WebhookPayload.model_validate_json(body) == WebhookPayload.of(event)
    document = json.loads(body)
    assert document["type"] == "request.completed"
    assert document["request_id"] == event.request_id
    assert (document["total"], document["processed"], document["failed"]) == (3, 2, 1)


async def test_every_attempt_of_one_completion_uses_the_same_webhook_id() -> None:
    event, post, broker = completed(), FakePost(SERVER_ERROR), FakeBroker()

    with pytest.raises(WebhookNotDelivered):
        await handle(event, post, broker, attempt=1)
    post.answer = DELIVERED
    await handle(event, post, broker, attempt=2)

    assert [webhook_id for _, webhook_id, _ in post.calls] == [event.event_id, event.event_id]
    assert post.calls[0][2] == post.calls[1][2]


# --- failed attempts --------------------------------------------------------------------------


async def test_a_failed_attempt_before_the_last_publishes_attempt_failed_and_raises() -> None:
    event, post, broker = completed(), FakePost(SERVER_ERROR), FakeBroker()

    with pytest.raises(WebhookNotDelivered):
        await handle(event, post, broker, attempt=2, max_attempts=4)

    [outcome] = broker.published
    assert isinstance(outcome, WebhookAttemptFailed)
    assert outcome.webhook_id == event.event_id
    assert outcome.url == HOOK
    assert outcome.attempts == 2
    assert outcome.status_code == 500
    assert outcome.reason == "http_500"


async def test_a_failed_last_attempt_publishes_webhook_failed_and_does_not_raise() -> None:
    event, post, broker = completed(), FakePost(SERVER_ERROR), FakeBroker()

    await handle(event, post, broker, attempt=4, max_attempts=4)

    [outcome] = broker.published
    assert isinstance(outcome, WebhookFailed)
    assert outcome.webhook_id == event.event_id
    assert outcome.attempts == 4
    assert outcome.status_code == 500
    assert outcome.reason == "http_500"


@pytest.mark.parametrize(
    "answer",
    [
        Attempt(False, 410, "http_410: the receiver asked us to stop", final=True),
        Attempt(False, None, "blocked_address: 10.0.0.1 is private", final=True),
    ],
    ids=["gone", "blocked"],
)
async def test_a_final_answer_gives_up_at_once_with_webhook_failed(answer: Attempt) -> None:
    event, post, broker = completed(), FakePost(answer), FakeBroker()

    await handle(event, post, broker, attempt=1, max_attempts=4)

    [outcome] = broker.published
    assert isinstance(outcome, WebhookFailed)
    assert outcome.attempts == 1
    assert outcome.status_code == answer.status_code
    assert outcome.reason == answer.reason
    assert len(post.calls) == 1


# --- where to ---------------------------------------------------------------------------------


async def test_without_a_webhook_url_or_a_default_nothing_is_posted_or_published() -> None:
    event, post, broker = completed(webhook_url=None), FakePost(DELIVERED), FakeBroker()

    await handle(event, post, broker, default_url=None)

    assert post.calls == []
    assert broker.published == []


async def test_the_default_url_is_used_when_the_event_names_none() -> None:
    event, post, broker = completed(webhook_url=None), FakePost(DELIVERED), FakeBroker()

    await handle(event, post, broker, default_url=DEFAULT)

    assert [url for url, _, _ in post.calls] == [DEFAULT]
    [outcome] = broker.published
    assert isinstance(outcome, WebhookDelivered)
    assert outcome.url == DEFAULT


async def test_the_events_own_webhook_url_wins_over_the_default() -> None:
    event, post, broker = completed(webhook_url=HOOK), FakePost(DELIVERED), FakeBroker()

    await handle(event, post, broker, default_url=DEFAULT)

    assert [url for url, _, _ in post.calls] == [HOOK]


# --- messages that can never succeed ----------------------------------------------------------


async def test_an_event_that_is_not_a_request_completion_is_rejected() -> None:
    other = unrelated_event()
    post, broker = FakePost(DELIVERED), FakeBroker()

    with pytest.raises(Reject):
        await handle(other, post, broker, default_url=DEFAULT)

    assert post.calls == []
    assert broker.published == []


# --- once -------------------------------------------------------------------------------------


async def test_a_completion_met_again_after_its_webhook_was_delivered_is_not_sent_again() -> None:
    event, deliveries = completed(), FakeDeliveries()
    first, again = FakePost(DELIVERED), FakePost(DELIVERED)
    broker = FakeBroker()

    await handle(event, first, broker, attempt=1, deliveries=deliveries)
    await handle(event, again, broker, attempt=1, deliveries=deliveries)

    assert len(first.calls) == 1
    assert again.calls == []
    announced = [e for e in broker.published if isinstance(e, WebhookDelivered)]
    assert [(e.webhook_id, e.url, e.status_code) for e in announced] == [
        (event.event_id, HOOK, 204),
        (event.event_id, HOOK, 204),
    ]


async def test_a_failed_attempt_is_not_remembered_as_a_delivery() -> None:
    event, deliveries = completed(), FakeDeliveries()

    with pytest.raises(WebhookNotDelivered):
        await handle(event, FakePost(SERVER_ERROR), FakeBroker(), deliveries=deliveries)

    assert deliveries.records == {}


async def test_an_unreachable_database_does_not_hold_back_the_webhook() -> None:
    event, post, broker, deliveries = (
        completed(),
        FakePost(DELIVERED),
        FakeBroker(),
        FakeDeliveries(),
    )
    deliveries.broken = ServerSelectionTimeoutError("no database")

    await handle(event, post, broker, deliveries=deliveries)

    assert len(post.calls) == 1
    assert [type(e) for e in broker.published] == [WebhookDelivered]
