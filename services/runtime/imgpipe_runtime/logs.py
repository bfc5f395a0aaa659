"""Logging for every service: JSON lines for machines, plain text on a terminal.

Each line that concerns a request carries its `request_id` (and the event's `event_id`), taken
from context variables that the consumer boundary and the upload handler set, so a request can
be followed across services with one filter; with tracing on, each line written inside a span
carries its `trace_id` and `span_id` too. Credentials in URLs never reach a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
EVENT_ID: ContextVar[str | None] = ContextVar("event_id", default=None)
# The current span's (trace id, span id), set by imgpipe_runtime.tracing while it is on.
TRACE_IDS: Callable[[], tuple[str, str] | None] | None = None

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):[^@\s]+@", re.I)
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")

LogFormat = Literal["auto", "json", "text"]


def redact(text: str) -> str:
    """Mask passwords in URLs and webhook secrets."""
    return _SECRET.sub("whsec_***", _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text))


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.event_id = EVENT_ID.get()
        ids = TRACE_IDS() if TRACE_IDS is not None else None
        record.trace_id, record.span_id = ids if ids is not None else (None, None)
        return True


class QuietPolls(logging.Filter):
    """For uvicorn's access log: drop the lines of successful GETs of `paths` (prefixes)
    unless the level is DEBUG. Pollers ask for a status ten times a second each, and probes
    for /healthz and /metrics every few seconds; one line per answer would bury the lines
    that matter and cost the status service a fifth of each answer's CPU. Failures (4xx,
    5xx) and every other method are still logged."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        super().__init__()
        self.paths = paths

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, path with query, HTTP version, status).
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _, method, path, _, status = args
        routine = (
            method == "GET"
            and isinstance(path, str)
            and path.startswith(self.paths)
            and status in (200, 304)
        )
        return not routine or logging.getLogger().isEnabledFor(logging.DEBUG)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ("request_id", "event_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


def configure_logging(level: str, service: str, fmt: LogFormat = "auto") -> None:
    """JSON lines unless stderr is a terminal (or `fmt` says otherwise)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
