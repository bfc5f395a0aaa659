"""Tracing's set-up and the decisions imgpipe adds to the instrumentations (no I/O: spans go
to the SDK's in-memory exporter here; the e2e test checks the real exporters on the wire)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from imgpipe_runtime import logs, otel, tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def remote(trace_id: int, span_id: int, sampled: bool) -> context.Context:
    """The context a consumer sees for a message whose traceparent says this."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags))
    return trace.set_span_in_context(span, context.Context())


@pytest.fixture
def exported() -> Iterator[tuple[otel.Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield otel.Tracing(provider), exporter
    provider.shutdown()


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ],
)
def test_tracing_is_on_only_when_an_otlp_endpoint_is_set(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


@pytest.mark.parametrize(
    ("traceparent", "trace_id"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"00-{TRACE}-00f067aa0ba902b7-03", TRACE),
        (f"00-{TRACE}-00f067aa0ba902b7-00", None),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
        ("00-not-hex-01", None),
        (f"00-{TRACE[:-1]}x-00f067aa0ba902b7-01", None),
        (None, None),
        ("", None),
    ],
)
def test_the_status_shows_the_trace_id_of_a_sampled_upload_only(
    traceparent: str | None, trace_id: str | None
) -> None:
    assert tracing.sampled_trace_id(traceparent) == trace_id


def test_off_every_helper_does_nothing_and_imports_nothing() -> None:
    assert not tracing.enabled()
    assert tracing.headers() == {}
    assert tracing.traceparent() is None
    assert tracing.capture() is None
    assert not tracing.recording()
    with tracing.span("x"), tracing.handling([None], "queue"), tracing.joined(None, "y"):
        tracing.annotate(a=1)
        tracing.timed_span("z", 0, 1)
    assert logs.TRACE_IDS is None


def configured(provider: TracerProvider) -> object:
    sampler = provider.sampler
    assert isinstance(sampler, otel.TracesStartAtEntries)
    return sampler.configured


def test_the_sampler_follows_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(configured(otel.new_provider("processor")), ParentBased)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    sampler = configured(otel.new_provider("processor"))
    assert isinstance(sampler, ParentBased)
    assert "TraceIdRatioBased{0.1}" in sampler.get_description()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    assert isinstance(configured(otel.new_provider("processor")), TraceIdRatioBased)


@pytest.mark.parametrize(
    ("kind", "sampled"),
    [
        (SpanKind.SERVER, True),
        (SpanKind.CONSUMER, True),
        (SpanKind.CLIENT, False),
        (SpanKind.PRODUCER, False),
        (SpanKind.INTERNAL, False),
    ],
)
def test_traces_start_only_where_work_enters_a_service(kind: SpanKind, sampled: bool) -> None:
    provider = otel.new_provider("status")
    tracer = provider.get_tracer("test")
    assert tracer.start_span("root", kind=kind).is_recording() is sampled
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER):
        assert tracer.start_span("find", kind=SpanKind.CLIENT).is_recording()
    provider.shutdown()


def test_the_service_name_defaults_to_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert otel.new_provider("status").resource.attributes["service.name"] == "status"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,region=eu")
    assert otel.new_provider("status").resource.attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "imgpipe-status-eu")
    assert otel.new_provider("status").resource.attributes["service.name"] == "imgpipe-status-eu"


def test_an_unsampled_delivery_is_handled_with_instrumentation_suppressed(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with tracer.handling([remote(1, 2, sampled=False)], "queue"):
        assert not is_instrumentation_enabled()
        # Still in the upload's trace, for the log lines and the next message's headers.
        assert tracer.log_ids() == (f"{1:032x}", f"{2:016x}")
        assert tracer.headers()["traceparent"] == f"00-{1:032x}-{2:016x}-00"
        with tracer.span("process image", {}):
            assert not tracer.recording()
    assert is_instrumentation_enabled()
    assert exporter.get_finished_spans() == ()


def test_a_sampled_delivery_is_handled_in_its_trace(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with tracer.handling([remote(1, 2, sampled=True)], "queue"):
        assert is_instrumentation_enabled()
        with tracer.span("process image", {"imgpipe.row": 3}):
            tracer.timed_span("recompress in worker", 10, 20, {})
    worker, image = exporter.get_finished_spans()
    assert image.context.trace_id == 1 and image.parent is not None
    assert image.parent.span_id == 2
    assert worker.parent is not None and worker.parent.span_id == image.context.span_id
    assert (worker.start_time, worker.end_time) == (10, 20)


def test_a_mixed_batch_joins_the_first_sampled_trace_and_links_every_delivery(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    batch = [remote(1, 2, False), remote(3, 4, True), remote(5, 6, True), remote(5, 6, True)]
    with tracer.handling(batch, "status.image-outcome"):
        assert is_instrumentation_enabled()
    [span] = exporter.get_finished_spans()
    assert span.context.trace_id == 3 and span.parent is not None and span.parent.span_id == 4
    assert {(link.context.trace_id, link.context.span_id) for link in span.links} == {
        (1, 2),
        (5, 6),
    }
    assert span.name == "status.image-outcome batch" and span.attributes == {"batch": 4}


def test_a_batch_with_no_sampled_delivery_makes_no_span(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with tracer.handling([remote(1, 2, False), remote(3, 4, False)], "queue"):
        assert not is_instrumentation_enabled()
    assert exporter.get_finished_spans() == ()


def test_completion_continues_the_uploads_trace_even_from_an_unsampled_batch(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    upload = f"00-{7:032x}-{8:016x}-01"
    with (
        tracer.handling([remote(1, 2, False)], "queue"),
        tracer.joined(upload, "complete request", {"imgpipe.request_id": "r"}),
    ):
        assert is_instrumentation_enabled()
    [span] = exporter.get_finished_spans()
    assert span.context.trace_id == 7 and span.parent is not None and span.parent.span_id == 8
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(1, 2)]


def test_completion_of_an_unsampled_upload_records_nothing(
    exported: tuple[otel.Tracing, InMemorySpanExporter],
) -> None:
    tracer, exporter = exported
    with tracer.joined(f"00-{7:032x}-{8:016x}-00", "complete request", {}):
        assert not is_instrumentation_enabled()
    assert exporter.get_finished_spans() == ()


def json_line(monkeypatch: pytest.MonkeyPatch, ids: tuple[str, str] | None) -> str:
    monkeypatch.setattr(logs, "TRACE_IDS", lambda: ids)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    logs._Context().filter(record)
    return logs.JsonFormatter("processor").format(record)


def test_json_log_lines_inside_a_span_carry_its_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    line = json_line(monkeypatch, (TRACE, "00f067aa0ba902b7"))
    assert f'"trace_id":"{TRACE}"' in line and '"span_id":"00f067aa0ba902b7"' in line
    assert "trace_id" not in json_line(monkeypatch, None)
