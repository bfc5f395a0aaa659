"""`GET /metrics` on every service, checked against what the status API reports for one run.

The stack is shared with the other end-to-end tests, so the test compares deltas: it waits until
no earlier work is still moving the counters, scrapes, uploads, waits for the webhook, scrapes
again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from imgpipe_contracts.topology import (
    NOTIFIER_REQUEST_COMPLETED,
    PROCESSOR_IMAGE_REQUESTED,
    STATUS_IMAGE_BATCH,
    STATUS_IMAGE_OUTCOME,
    STATUS_WEBHOOK_OUTCOME,
)
from tests.e2e.conftest import Origin, RunningStack, WebhookReceiver, eventually
from tests.e2e.test_pipeline import seed_csv, upload, wait_for_final_status

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = dict[str, Samples]


def endpoints(stack: RunningStack) -> dict[str, str]:
    processor = f"http://127.0.0.1:{stack.stack.env['METRICS_PORT']}"
    return {
        "ingest": stack.ingest_url,
        "processor": processor,
        "status": stack.status_url,
        "notifier": stack.notifier_url,
    }


async def scrape(session: aiohttp.ClientSession, stack: RunningStack) -> Scrape:
    """imgpipe's own samples of every service (process and GC metrics always move)."""
    result: Scrape = {}
    for service, base in endpoints(stack).items():
        async with session.get(f"{base}/metrics", allow_redirects=False) as response:
            assert response.status == 200, service
            assert response.content_type == "text/plain", service
            text = await response.text()
        result[service] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("imgpipe_") and not sample.name.endswith("_created")
        }
    return result


Key = tuple[str, str, frozenset[tuple[str, str]]]


def key(service: str, name: str, **labels: str) -> Key:
    return service, name, frozenset(labels.items())


def deltas(before: Scrape, after: Scrape, keys: Iterable[Key]) -> dict[Key, float]:
    return {
        (service, name, labels): after[service].get((name, labels), 0.0)
        - before[service].get((name, labels), 0.0)
        for service, name, labels in keys
    }


async def quiet(session: aiohttp.ClientSession, stack: RunningStack) -> Scrape:
    """A scrape once nothing has changed for 2 s (longer than the tests' retry delays), so
    work left by earlier tests cannot land between our two scrapes."""

    async def unchanged() -> Scrape | None:
        first = await scrape(session, stack)
        await asyncio.sleep(2)
        second = await scrape(session, stack)
        return second if second == first else None

    result: Scrape = await eventually(unchanged, interval=0)  # type: ignore[assignment]
    return result


def expected(status: dict[str, Any]) -> dict[Key, float]:
    """Each counter's delta that the run reported in `status` must produce."""
    total, processed = status["progress"]["total"], status["progress"]["processed"]
    encoded = processed - sum(status["reused"].values())
    checks = {
        key("ingest", "imgpipe_ingest_uploads_accepted_total"): 1,
        key("ingest", "imgpipe_ingest_images_queued_total"): total,
        key("processor", "imgpipe_processor_images_processed_total"): processed,
        key("processor", "imgpipe_processor_bytes_in_total"): status["bytes_in"],
        key("processor", "imgpipe_processor_bytes_out_total"): status["bytes_out"],
        # One request per image (the 404 is not retried; the seed's origin gives no max-age,
        # so an image seen before is revalidated); only images not reused are encoded.
        key("processor", "imgpipe_processor_download_seconds_count"): total,
        key("processor", "imgpipe_processor_processing_seconds_count"): encoded,
        key("processor", "imgpipe_processor_encodes_total"): encoded,
        key("status", "imgpipe_status_requests_completed_total", status="Completed"): 1,
        key("notifier", "imgpipe_notifier_webhook_attempts_total", outcome="delivered"): 1,
        key("notifier", "imgpipe_notifier_webhook_attempts_total", outcome="retrying"): 0,
        key("notifier", "imgpipe_notifier_webhook_attempts_total", outcome="failed"): 0,
        key("notifier", "imgpipe_notifier_webhook_duration_seconds_count"): 1,
    }
    for reason, count in status["failures_by_reason"].items():
        checks[key("processor", "imgpipe_processor_images_failed_total", reason=reason)] = count
    # The seed CSV's 6 images travel in one batch, to the processor and to status; their
    # outcomes in as many messages as they took to finish (see outcome_messages_were_counted).
    consumed = {
        ("processor", PROCESSOR_IMAGE_REQUESTED.base): 1,
        ("status", STATUS_IMAGE_BATCH.base): 1,
        ("notifier", NOTIFIER_REQUEST_COMPLETED.base): 1,
        ("status", STATUS_WEBHOOK_OUTCOME.base): 1,
    }
    for (service, queue), count in consumed.items():
        checks[key(service, "imgpipe_messages_consumed_total", queue=queue)] = count
    for service, queue in [*consumed, ("status", STATUS_IMAGE_OUTCOME.base)]:
        for untouched in (
            "imgpipe_messages_redelivered_total",
            "imgpipe_messages_retried_total",
            "imgpipe_messages_dead_lettered_total",
            "imgpipe_handler_errors_total",
        ):
            checks[key(service, untouched, queue=queue)] = 0
    return checks


async def test_metrics_count_what_the_status_reports(
    running_stack: RunningStack, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    async with aiohttp.ClientSession() as session:
        before = await quiet(session, running_stack)
        accepted = await upload(
            session, running_stack, seed_csv(origin.base_url), webhook_receiver.url
        )
        status = await wait_for_final_status(session, accepted["status_url"])
        assert status["status"] == "Completed"
        assert status["progress"] == {"total": 6, "processed": 5, "failed": 1}
        assert status["failures_by_reason"] == {"http_404": 1}

        async def webhook_arrived() -> bool:
            return any(
                orjson.loads(call.body)["request_id"] == accepted["request_id"]
                for call in webhook_receiver.calls
            )

        await eventually(webhook_arrived)
        want = expected(status)

        # Some counters move a moment after the next service has acted (the processor's after
        # its publish is confirmed, status's webhook-outcome after the webhook arrived), so
        # give the last increments time to land.
        async def all_counted() -> Scrape | None:
            after = await scrape(session, running_stack)
            return after if deltas(before, after, want) == want else None

        with contextlib.suppress(AssertionError):  # the assertions below say what differs
            await eventually(all_counted, within=10)
        after = await scrape(session, running_stack)
    assert deltas(before, after, want) == want
    # Every failure reason and no other, and no upload rejected in between.
    failed = [k for k in after["processor"] if k[0] == "imgpipe_processor_images_failed_total"]
    failed_delta = sum(deltas(before, after, [("processor", *k) for k in failed]).values())
    assert failed_delta == status["progress"]["failed"]
    rejected = [k for k in after["ingest"] if k[0] == "imgpipe_ingest_uploads_rejected_total"]
    assert not any(deltas(before, after, [("ingest", *k) for k in rejected]).values())
    # The outcomes came in one to six messages, depending on how they finished together.
    outcomes = key("status", "imgpipe_messages_consumed_total", queue=STATUS_IMAGE_OUTCOME.base)
    assert 1 <= deltas(before, after, [outcomes])[outcomes] <= status["progress"]["total"]


async def test_each_service_exports_its_own_metrics_and_no_other_services(
    running_stack: RunningStack,
) -> None:
    async with aiohttp.ClientSession() as session:
        scraped = await scrape(session, running_stack)

    for service, samples in scraped.items():
        names = {name for name, _ in samples}
        others = [f"imgpipe_{other}_" for other in scraped if other != service]
        assert not [n for n in names if n.startswith(tuple(others))], service
    # Unlabelled counters are exported from the start, so each service shows its own.
    assert ("imgpipe_ingest_uploads_accepted_total", frozenset()) in scraped["ingest"]
    assert ("imgpipe_processor_images_processed_total", frozenset()) in scraped["processor"]
