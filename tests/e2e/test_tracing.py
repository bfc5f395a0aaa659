"""OpenTelemetry traces across the four services, checked on the wire: the services export
over OTLP/HTTP to a receiver of the test's own (`imgpipe_dev.otlp`), pointed at by the standard
variables alone, and the test asserts on what arrives."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from imgpipe_dev.otlp import OtlpReceiver, ReceivedSpan, render_tree
from tests.conftest import REPO, Namespace, new_namespace
from tests.e2e.conftest import (
    Origin,
    RunningStack,
    WebhookReceiver,
    eventually,
    stack_running,
    webhook_payload,
)
from tests.e2e.test_dashboard import browser
from tests.e2e.test_pipeline import seed_csv, upload, wait_for_final_status

__all__ = ["browser"]  # the Chromium fixture of the dashboard tests

SERVICES = {"ingest", "processor", "status", "notifier"}
# The trace the test received, as a tree (the README shows one; Jaeger cannot run here).
TREE = REPO / "results" / "trace-tree.txt"
# The seed CSV: six URLs, five of them photos the origin serves.
IMAGES, PHOTOS = 6, 5


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver()
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
async def traced_namespace(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Namespace]:
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        yield ns


@pytest.fixture(scope="module")
def traced_stack(
    traced_namespace: Namespace,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningStack]:
    env = {
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        # Spans leave within a fifth of a second instead of the default five.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "LOG_FORMAT": "json",
    }
    with stack_running(traced_namespace, tmp_path_factory.mktemp("traced"), env) as running:
        yield running


def log_lines(stack: RunningStack, service: str) -> list[dict[str, object]]:
    """The JSON lines of a service's log (other output, e.g. a traceback, left out)."""
    assert stack.stack.log_dir is not None
    text = (stack.stack.log_dir / f"{service}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def trace_id_of(traceparent: str) -> str:
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", traceparent)
    assert match, traceparent
    return match.group(1)


async def test_one_upload_is_one_trace_across_the_four_services(
    traced_stack: RunningStack,
    receiver: OtlpReceiver,
    origin: Origin,
    webhook_receiver: WebhookReceiver,
) -> None:
    async with aiohttp.ClientSession() as session:
        accepted = await upload(
            session, traced_stack, seed_csv(origin.base_url), webhook_receiver.url
        )
        request_id = accepted["request_id"]
        status = await wait_for_final_status(session, accepted["status_url"])
    trace_id = status["trace_id"]
    assert trace_id and re.fullmatch(r"[0-9a-f]{32}", trace_id), status

    # The webhook carries the trace on, for the receiver's own tracing.
    await webhook_payload(webhook_receiver, request_id)
    [call] = [c for c in webhook_receiver.calls if request_id.encode() in c.body]
    assert trace_id_of(call.headers["traceparent"]) == trace_id

    def spans() -> list[ReceivedSpan]:
        return receiver.traces().get(trace_id, [])

    async def complete() -> list[ReceivedSpan] | None:
        found = spans()
        names = [(s.service, s.kind, s.name) for s in found]
        downloads = http_calls(found, "processor", "GET")
        webhooks = http_calls(found, "notifier", "POST")
        ids = {s.span_id for s in found}
        # One tree: every span's parent is in the trace but the root's (a parent ends, and so
        # is exported, after its children).
        roots = [(s.service, s.kind) for s in found if s.parent_span_id not in ids]
        done = (
            roots == [("ingest", "server")]
            and {s.service for s in found} == SERVICES
            and len(downloads) == IMAGES
            and names.count(("processor", "internal", "recompress in worker")) == PHOTOS
            and len(webhooks) == 1
        )
        return found if done else None

    found = await eventually(complete, within=30)
    assert isinstance(found, list)
    TREE.parent.mkdir(exist_ok=True)
    TREE.write_text(render_tree(found) + "\n")
    by_id = {s.span_id: s for s in found}
    images = [s for s in found if s.name == "process image"]
    assert len(images) == IMAGES
    assert {s.attributes["imgpipe.request_id"] for s in images} == {request_id}
    for download in http_calls(found, "processor", "GET"):
        assert by_id[download.parent_span_id].name == "process image"
    for name in ("validate CSV", "complete request", "write output CSV", "wait for a worker"):
        assert name in {s.name for s in found}, name
    [webhook] = http_calls(found, "notifier", "POST")
    assert webhook_receiver.url in str(webhook.attributes)

    # Every service's JSON log has lines written inside the trace, with their span.
    for service in SERVICES:
        lines = [line for line in log_lines(traced_stack, service) if line.get("trace_id")]
        ours = [line for line in lines if line["trace_id"] == trace_id]
        assert ours, f"no log line of {service} carries the trace id"
        assert all(re.fullmatch(r"[0-9a-f]{16}", str(line["span_id"])) for line in ours)


async def test_the_dashboard_shows_a_traced_requests_trace_id(
    traced_stack: RunningStack, origin: Origin, browser: Browser
) -> None:
    async with aiohttp.ClientSession() as session:
        accepted = await upload(session, traced_stack, seed_csv(origin.base_url), "")
        status = await wait_for_final_status(session, accepted["status_url"])
    page = await browser.new_page()
    await page.goto(f"{traced_stack.status_url}/dashboard/#/requests/{accepted['request_id']}")
    await expect(page.locator("#status")).to_have_text("Completed")
    await expect(page.locator("#trace-id")).to_have_text(status["trace_id"])
    await page.close()


def http_calls(spans: list[ReceivedSpan], service: str, method: str) -> list[ReceivedSpan]:
    """The aiohttp client's spans (named after the method alone) of one service."""
    return [s for s in spans if s.service == service and s.kind == "client" and s.name == method]


async def test_with_an_endpoint_every_service_exports(traced_stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as session:
        for url in metrics_urls(traced_stack):
            async with session.get(url) as response:
                assert "imgpipe_tracing_enabled 1.0" in await response.text(), url
    for service in SERVICES:
        assert exporter_loaded(traced_stack, service)


def metrics_urls(stack: RunningStack) -> list[str]:
    processor = f"http://127.0.0.1:{stack.stack.env['METRICS_PORT']}/metrics"
    return [
        f"{stack.ingest_url}/metrics",
        f"{stack.status_url}/metrics",
        f"{stack.notifier_url}/metrics",
        processor,
    ]


async def test_with_no_endpoint_no_service_traces(
    running_stack: RunningStack, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    async with aiohttp.ClientSession() as session:
        accepted = await upload(
            session, running_stack, seed_csv(origin.base_url), webhook_receiver.url
        )
        status = await wait_for_final_status(session, accepted["status_url"])
        await webhook_payload(webhook_receiver, accepted["request_id"])
        for url in metrics_urls(running_stack):
            async with session.get(url) as response:
                assert "imgpipe_tracing_enabled 0.0" in await response.text(), url
    assert status["trace_id"] is None
    [call] = [c for c in webhook_receiver.calls if accepted["request_id"].encode() in c.body]
    assert "traceparent" not in call.headers
    for service in SERVICES:
        assert not [line for line in log_lines(running_stack, service) if "trace_id" in line]
        assert not exporter_loaded(running_stack, service)


def exporter_loaded(stack: RunningStack, service: str) -> bool:
    """Whether the service's process has the OTLP exporter loaded: its protobuf runtime
    (a native library, so it shows in the process's memory map; nothing else uses it)."""
    pid = stack.stack.processes[service].pid
    return "/google/_upb/" in Path(f"/proc/{pid}/maps").read_text()
