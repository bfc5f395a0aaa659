"""With tracing on, a crash may lose spans, never work: the processor SIGKILLed mid-request, the
result is still exact, and the rest of the request's work lands in the upload's trace."""

from __future__ import annotations

import aiohttp

from imgpipe_dev.otlp import OtlpReceiver
from tests.e2e.conftest import eventually
from tests.faults.checks import assert_exact_result, images_csv, status, upload, wait_for
from tests.faults.conftest import Origin, Receiver, System

ROWS, PER_ROW = 100, 2
HALF = ROWS * PER_ROW // 2


async def test_a_traced_processor_killed_halfway_loses_no_work_and_keeps_the_trace(
    traced_system: System,
    otlp: OtlpReceiver,
    origin: Origin,
    receiver: Receiver,
    http: aiohttp.ClientSession,
) -> None:
    system = traced_system
    request_id = await upload(
        http, system, images_csv(origin, ROWS, PER_ROW), f"{receiver.base_url}/ok"
    )
    await wait_for(http, system, request_id, outcomes=HALF)
    system.restart("processor")
    await assert_exact_result(http, system, receiver, request_id, ROWS, PER_ROW)

    trace_id = (await status(http, system, request_id))["trace_id"]
    assert trace_id
    [call] = receiver.for_request(request_id)
    assert call.headers["traceparent"].split("-")[1] == trace_id

    async def whole_story() -> set[tuple[int, int]] | None:
        spans = otlp.traces().get(trace_id, [])
        names = {(s.service, s.name) for s in spans}
        images = {
            (s.attributes["imgpipe.row"], s.attributes["imgpipe.position"])
            for s in spans
            if s.name == "process image"
        }
        ends = {("status", "complete request"), ("notifier", "POST")}
        # The images done after the kill are the new processor's, in the upload's trace; a
        # few done by the old one just before it died may have lost their spans with it.
        return images if ends <= names and len(images) >= 0.8 * HALF else None

    assert await eventually(whole_story, within=30)
