"""A small OTLP/HTTP trace receiver: what the services' exporters send, decoded.

It decodes `ExportTraceServiceRequest` (protobuf, the exporters' default) with the
`opentelemetry-proto` package, so the tests and the bench check the real wire format rather
than an in-process exporter. No collector or Jaeger can be installed on these machines.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_STATUS_ERROR = 2
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids in hex, times in nanoseconds since the epoch."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False


class OtlpReceiver:
    """An aiohttp server on 127.0.0.1 accepting `POST /v1/traces`; keeps the spans (or only
    counts them, with `keep=False`, for a long benchmark).

    It runs in a thread with an event loop of its own: its callers block their own loops
    while they start and stop services (`Stack.stop` waits for the processes), and a service
    that flushes its spans on the way out must find the receiver answering."""

    def __init__(self, port: int = 0, keep: bool = True) -> None:
        self._port = port
        self._keep = keep
        self.spans: list[ReceivedSpan] = []
        self.count = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Serve from a thread of its own; returns once the port is bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=30)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """The spans kept so far, by trace id."""
        found: dict[str, list[ReceivedSpan]] = {}
        for span in list(self.spans):
            found.setdefault(span.trace_id, []).append(span)
        return found

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                self.count += len(scope_spans.spans)
                if self._keep:
                    self.spans.extend(_span(service, s) for s in scope_spans.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


def render_tree(spans: list[ReceivedSpan]) -> str:
    """One trace as an indented tree (service, kind, name, duration), children in start order;
    spans whose parent did not arrive are roots."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_ns):
        parent = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            ms = (span.end_ns - span.start_ns) / 1e6
            links = f" (links {len(span.links)})" if span.links else ""
            lines.append(
                f"{'  ' * depth}{span.service:<9} {span.kind:<8} {span.name}  {ms:.1f} ms{links}"
            )
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


def _span(service: str, span: Any) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        kind=_KINDS.get(span.kind, "unspecified"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes=_attributes(span.attributes),
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        error=span.status.code == _STATUS_ERROR,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind is None or kind == "kvlist_value":
        return None
    return getattr(value, kind)
