"""Log lines: JSON for machines, request ids attached, no secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest

from imgpipe_runtime.logs import (
    REQUEST_ID,
    JsonFormatter,
    QuietPolls,
    TextFormatter,
    _Context,
    redact,
)


def record(message: str) -> logging.LogRecord:
    made = logging.LogRecord("imgpipe.test", logging.INFO, __file__, 1, message, None, None)
    _Context().filter(made)
    return made


def test_passwords_in_urls_and_webhook_secrets_are_masked() -> None:
    text = "connect amqp://guest:s3cret@rabbit:5672/ secret whsec_aGVsbG8gd29ybGQ="
    assert redact(text) == "connect amqp://guest:***@rabbit:5672/ secret whsec_***"


def test_a_json_line_carries_the_request_id_of_its_context() -> None:
    token = REQUEST_ID.set("9c6c54e4a3f14dfb8bc8ba834d08b170")
    try:
        line = orjson.loads(JsonFormatter("status").format(record("done for mongodb://a:b@h/")))
    finally:
        REQUEST_ID.reset(token)
    assert line["request_id"] == "9c6c54e4a3f14dfb8bc8ba834d08b170"
    assert (line["service"], line["level"], line["message"]) == (
        "status",
        "info",
        "done for mongodb://a:***@h/",
    )


def test_a_line_outside_any_request_has_no_request_id() -> None:
    line = orjson.loads(JsonFormatter("ingest").format(record("started")))
    assert "request_id" not in line


def test_text_lines_name_the_request_too() -> None:
    token = REQUEST_ID.set("abc")
    try:
        text = TextFormatter("processor").format(record("image failed"))
    finally:
        REQUEST_ID.reset(token)
    assert text.endswith("image failed [request abc]")


def access(method: str, path: str, status: int) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it."""
    args = ("127.0.0.1:50000", method, path, "1.1", status)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before = root.level
    yield root
    root.setLevel(before)


def test_successful_polls_leave_no_access_line_but_failures_and_other_requests_do(
    root_level: logging.Logger,
) -> None:
    root_level.setLevel(logging.INFO)
    quiet = QuietPolls(("/healthz", "/status/"))
    assert not quiet.filter(access("GET", "/status/9c6c54e4a3f14dfb8bc8ba834d08b170", 200))
    assert not quiet.filter(access("GET", "/healthz", 200))
    assert quiet.filter(access("GET", "/status/9c6c54e4a3f14dfb8bc8ba834d08b170", 404))
    assert quiet.filter(access("GET", "/healthz", 503))
    assert quiet.filter(access("POST", "/status/x", 200))
    assert quiet.filter(access("GET", "/files/images/a.jpg", 200))


def test_at_debug_level_every_poll_is_logged(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.DEBUG)
    assert QuietPolls(("/status/",)).filter(access("GET", "/status/abc", 200))
