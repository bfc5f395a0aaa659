"""OpenTelemetry traces, on only when an OTLP endpoint is configured.

Tracing is configured by the standard variables alone: it is on when
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, and
`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` work as the
specification says. Off, nothing of OpenTelemetry is even imported: every function here
returns at its first line, so a message costs no more than reading a header that is absent.

On, `imgpipe_runtime.otel` (imported then) sets up the SDK and the libraries'
instrumentations; the functions here are the few places where imgpipe adds to them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from imgpipe_runtime import logs, metrics

if TYPE_CHECKING:
    from imgpipe_runtime import otel

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT = "traceparent"

_otel: otel.Tracing | None = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint is set)."""
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def start(service: str) -> None:
    """Set tracing up for this process if the environment asks for it (idempotent)."""
    global _otel
    if _otel is None and wanted():
        from imgpipe_runtime import otel

        _otel = otel.start(service)
        logs.TRACE_IDS = _otel.log_ids
    metrics.TRACING_ENABLED.set(1 if _otel is not None else 0)


def shutdown() -> None:
    """Export what is buffered and stop the exporter (the end of the process's work)."""
    global _otel
    if _otel is not None:
        logs.TRACE_IDS = None
        _otel.shutdown()
        _otel = None


def enabled() -> bool:
    return _otel is not None


def instrument_app(app: Any) -> None:
    """Trace the FastAPI app's requests (not its probes)."""
    if _otel is not None:
        _otel.instrument_app(app)


def headers() -> dict[str, str]:
    """The current trace context as message headers (even for a trace that is not sampled,
    so the services downstream drop it too instead of starting traces of their own)."""
    return _otel.headers() if _otel is not None else {}


def traceparent() -> str | None:
    """The current span's W3C `traceparent`, to be stored with what outlives this span."""
    return _otel.headers().get(TRACEPARENT) if _otel is not None else None


def capture() -> object | None:
    """The current context, to attach later in another task (None when off)."""
    return _otel.capture() if _otel is not None else None


def span(name: str, **attributes: Any) -> AbstractContextManager[object]:
    """A span of imgpipe's own around a piece of work, when the current trace is sampled:
    an unsampled trace costs nothing more here."""
    if _otel is None:
        return nullcontext()
    return _otel.span(name, attributes)


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span, if it is recorded."""
    if _otel is not None:
        _otel.annotate(attributes)


def timed_span(name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
    """A finished child span from times measured elsewhere (in a pool worker)."""
    if _otel is not None:
        _otel.timed_span(name, start_ns, end_ns, attributes)


def recording() -> bool:
    """Whether the current span is being recorded (the trace is sampled)."""
    return _otel is not None and _otel.recording()


def handling(contexts: Sequence[object | None], queue: str) -> AbstractContextManager[object]:
    """Around a consumer's handler. One delivery: in its own context. Several (a batch mixes
    requests): a span `<queue> batch` joined to the first sampled one's trace and linked to
    all of them. A trace that is not sampled suppresses the instrumentations altogether."""
    if _otel is None:
        return nullcontext()
    return _otel.handling(contexts, queue)


def joined(parent: str | None, name: str, **attributes: Any) -> AbstractContextManager[object]:
    """A span continuing the trace of a stored `traceparent` (the upload's), linked to the
    current one: work that finishes a request belongs to the request's trace."""
    if _otel is None:
        return nullcontext()
    return _otel.joined(parent, name, attributes)


@contextmanager
def attached(context: object | None) -> Iterator[None]:
    """Run the block in a context captured earlier."""
    if _otel is None or context is None:
        yield
        return
    with _otel.attached(context):
        yield


def sampled_trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent`, if that trace was sampled (so it can be found in
    a tracing backend); a pure parse, so the status API needs no tracing of its own."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[3]) != 2:
        return None
    try:
        sampled = int(parts[3], 16) & 1
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1] if sampled and parts[1] != "0" * 32 else None
