"""Log lines: JSON for machines, request ids attached, no secrets."""

from __future__ import annotations

import logging

import orjson

from imgpipe_runtime.logs import REQUEST_ID, JsonFormatter, TextFormatter, _Context, redact


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
