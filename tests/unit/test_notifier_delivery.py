"""Signing one webhook with Standard Webhooks headers."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imgpipe_notifier.delivery import signed_headers

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
BODY = json.dumps({"request_id": "abc", "status": "Completed", "name": "Café ✓"})


def test_signature_verifies_with_the_same_secret() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_signature_verifies_against_the_utf8_body_bytes() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    assert Webhook(SECRET).verify(BODY.encode(), headers) == json.loads(BODY)


def test_webhook_id_header_is_the_given_id() -> None:
    headers = signed_headers(Webhook(SECRET), "0f1e2d3c4b5a", BODY)

    assert headers["webhook-id"] == "0f1e2d3c4b5a"


def test_headers_are_exactly_the_standard_webhooks_set_plus_json_content_type() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    assert set(headers) == {"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")


def test_timestamp_is_the_current_time_in_whole_seconds() -> None:
    before = int(time.time())
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)
    after = int(time.time())

    assert headers["webhook-timestamp"].isdigit()
    assert before <= int(headers["webhook-timestamp"]) <= after


def test_a_changed_body_does_not_verify() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace("Completed", "Failed"), headers)


def test_a_changed_webhook_id_does_not_verify() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers | {"webhook-id": "msg_2"})


def test_another_secret_does_not_verify() -> None:
    headers = signed_headers(Webhook(SECRET), "msg_1", BODY)

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OTHER_SECRET).verify(BODY, headers)
