"""The OpenTelemetry side of `imgpipe_runtime.tracing`, imported only when tracing is on.

The SDK reads the standard variables itself: the sampler (`OTEL_TRACES_SAMPLER`, parent-based
by default), the exporter's endpoint, headers and timeout, and `OTEL_SERVICE_NAME` over the
name given here. Spans go out in batches over OTLP/HTTP (protobuf) from the SDK's exporter
thread.

What a trace that is not sampled costs matters more than what a sampled one costs: at a 10 %
ratio nine uploads in ten are not. The instrumentations still build their attributes and a
non-recording span for every download, database command and publish of such a trace (in a
first version that let them, the processor's CPU per image rose from 3.45 to 3.95 ms with nine
uploads in ten unsampled; with this, a profile of it finds OpenTelemetry's frames in well
under 1 % of its samples). So a consumer's handler for an
unsampled trace runs with instrumentation suppressed (the libraries' own switch, which each
instrumentation checks first); the trace context still travels on in message headers (see
`headers`), so the services downstream drop the trace too instead of starting new ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceState
from opentelemetry.util.types import Attributes

# Left out of the HTTP services' traces: liveness and metrics probes, which arrive every few
# seconds and say nothing about a request; and a request's status (`GET /status/<id>`, not
# its /events or /images), which pollers ask for ten times a second each: every poll a trace
# of its own, each poll's middleware work cost the status service about as much CPU as the
# rest of an image's handling there (measured in the bench's run 2t), and none of it belongs
# to the upload's trace. (Regular expressions, searched for in the URL.)
EXCLUDED_URLS = "/healthz,/metrics,/status/[0-9a-f]+$"
_EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
_ENTRIES = (SpanKind.SERVER, SpanKind.CONSUMER)
# The plain-string twin of the suppression key, which some instrumentations check instead.
_SUPPRESS_PLAIN = "suppress_instrumentation"


def new_provider(service: str) -> TracerProvider:
    """A provider for `service`, its sampler and resource from the standard variables."""
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, but attributes
    # passed to it would win over them: the service's own name goes in only where neither
    # named it (the SDK's default is "unknown_service..."). The provider reads
    # OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself.
    resource = Resource.create()
    named = str(resource.attributes.get(SERVICE_NAME, ""))
    if not named or named.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    provider.sampler = TracesStartAtEntries(provider.sampler)
    return provider


class TracesStartAtEntries(Sampler):
    """The configured sampler, except that a trace starts only where work enters a service:
    an HTTP request (a SERVER span) or a message (CONSUMER). A database command, publish or
    download with no trace around it (a health check's ping, the completion relay's and the
    collector's rounds, a status poll, which is left out of the traces) would otherwise be a
    trace of one span of its own, sampled at the configured ratio: noise in the backend, and
    work for the exporter."""

    def __init__(self, configured: Sampler) -> None:
        self.configured = configured

    def should_sample(
        self,
        parent_context: context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind not in _ENTRIES:
            return SamplingResult(Decision.DROP)
        return self.configured.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"TracesStartAtEntries{{{self.configured.get_description()}}}"


def start(service: str) -> Tracing:
    """Export this process's spans over OTLP/HTTP and instrument the libraries it uses."""
    provider = new_provider(service)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # The dependency check reads every installed distribution's metadata; the versions are
    # pinned in uv.lock, so it would only slow start-up down.
    for instrumentor in (AioPikaInstrumentor(), AioHttpClientInstrumentor(), PymongoInstrumentor()):
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    return Tracing(provider)


class Tracing:
    """What imgpipe adds to the instrumentations, over one provider."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("imgpipe")

    def shutdown(self) -> None:
        self._provider.shutdown()

    def instrument_app(self, app: Any) -> None:
        # The instrumentation's own variables win over imgpipe's default, as they would
        # without one.
        excluded = next(
            (os.environ[v] for v in _EXCLUDED_URLS_VARIABLES if os.environ.get(v)), EXCLUDED_URLS
        )
        # Without a span per ASGI message (`http send` / `http receive`): a response is two
        # or three of them, each telling less than the request's own span.
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self._provider,
            excluded_urls=excluded,
            exclude_spans=["receive", "send"],
        )

    def headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def capture(self) -> object:
        return context.get_current()

    @contextmanager
    def attached(self, ctx: object) -> Iterator[None]:
        assert isinstance(ctx, context.Context)
        token = context.attach(ctx)
        try:
            yield
        finally:
            context.detach(token)

    def log_ids(self) -> tuple[str, str] | None:
        found = trace.get_current_span().get_span_context()
        if not found.is_valid:
            return None
        return trace.format_trace_id(found.trace_id), trace.format_span_id(found.span_id)

    def recording(self) -> bool:
        return trace.get_current_span().is_recording()

    def span(self, name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[object]:
        parent = trace.get_current_span().get_span_context()
        if _suppressed() or (parent.is_valid and not parent.trace_flags.sampled):
            return nullcontext()
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attributes(attributes)

    def timed_span(
        self, name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any]
    ) -> None:
        if self.recording():
            self._tracer.start_span(name, start_time=start_ns, attributes=attributes).end(end_ns)

    @contextmanager
    def handling(self, contexts: Sequence[object | None], queue: str) -> Iterator[None]:
        found = [c for c in contexts if isinstance(c, context.Context)]
        if not found:
            yield
            return
        if len(found) == 1:
            with self.attached(_with_suppression(found[0], not _sampled(found[0]))):
                yield
            return
        spans = _distinct_spans(found)
        sampled = [s for s in spans if s.trace_flags.sampled]
        if not sampled:
            with self.attached(_with_suppression(found[0], True)):
                yield
            return
        parent = trace.set_span_in_context(trace.NonRecordingSpan(sampled[0]), context.Context())
        links = [Link(s) for s in spans if s is not sampled[0]]
        with (
            self.attached(_with_suppression(parent, False)),
            self._tracer.start_as_current_span(
                f"{queue} batch", links=links, attributes={"batch": len(found)}
            ),
        ):
            yield

    @contextmanager
    def joined(
        self, parent: str | None, name: str, attributes: Mapping[str, Any]
    ) -> Iterator[None]:
        current = trace.get_current_span().get_span_context()
        ctx = propagate.extract({"traceparent": parent}) if parent else context.get_current()
        sampled = trace.get_current_span(ctx).get_span_context().trace_flags.sampled
        if not sampled:
            with self.attached(_with_suppression(ctx, True)):
                yield
            return
        links = [Link(current)] if current.is_valid else []
        with (
            self.attached(_with_suppression(ctx, False)),
            self._tracer.start_as_current_span(name, links=links, attributes=attributes),
        ):
            yield


def _sampled(ctx: context.Context) -> bool:
    found = trace.get_current_span(ctx).get_span_context()
    # No trace at all (a message from a publisher that does not trace): the sampler decides.
    return not found.is_valid or found.trace_flags.sampled


def _distinct_spans(contexts: Sequence[context.Context]) -> list[SpanContext]:
    spans: dict[tuple[int, int], SpanContext] = {}
    for ctx in contexts:
        found = trace.get_current_span(ctx).get_span_context()
        if found.is_valid:
            spans.setdefault((found.trace_id, found.span_id), found)
    return list(spans.values())


def _with_suppression(ctx: context.Context, suppressed: bool) -> context.Context:
    ctx = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, suppressed, ctx)
    return context.set_value(_SUPPRESS_PLAIN, suppressed, ctx)


def _suppressed() -> bool:
    return bool(context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
