"""The live progress stream: snapshots as the request moves, ending with the final status."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.e2e.conftest import Origin, RunningStack, WebhookReceiver
from tests.e2e.test_pipeline import seed_csv, upload


async def read_stream(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, status) of each `status` event until the stream ends (or `stop_after` events)."""
    events: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with session.get(url, headers=headers or {}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if fields.get("event") == "status":
                events.append((fields["id"], json.loads(fields["data"])))
                if stop_after is not None and len(events) >= stop_after:
                    break
            fields = {}
    return events


async def test_the_stream_follows_a_request_to_its_final_status_and_survives_a_reconnect(
    running_stack: RunningStack, origin: Origin, webhook_receiver: WebhookReceiver
) -> None:
    async with aiohttp.ClientSession() as session:
        accepted = await upload(
            session, running_stack, seed_csv(origin.base_url), webhook_receiver.url
        )
        url = f"{accepted['status_url']}/events"
        first = await read_stream(session, url, stop_after=1)
        resumed = await read_stream(session, url, headers={"Last-Event-ID": first[0][0]})

    assert first[0][1]["request_id"] == accepted["request_id"]
    done = [s["progress"]["processed"] + s["progress"]["failed"] for _, s in resumed]
    assert done == sorted(done), "progress never goes backwards"
    assert resumed[-1][1]["status"] == "Completed"
    assert resumed[-1][1]["progress"] == {"total": 6, "processed": 5, "failed": 1}
    assert all(s["status"] in ("Pending", "Processing") for _, s in resumed[:-1])


async def test_the_stream_of_an_unknown_request_is_404(running_stack: RunningStack) -> None:
    url = f"{running_stack.status_url}/status/{'0' * 32}/events"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 404
