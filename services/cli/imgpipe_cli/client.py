"""Talking to the ingest and status APIs: upload, status, the live event stream, downloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from imgpipe_contracts.events import FINAL_STATES


class ApiError(Exception):
    """The server said no (or could not be reached); the message says what to do."""


class NotFinished(ApiError):
    """The request is still being processed; the message says until when to wait."""


class Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ingest_url: str,
        status_url: str,
        api_key: str | None = None,
    ) -> None:
        self._session = session
        self._ingest = ingest_url.rstrip("/")
        self._status = status_url.rstrip("/")
        self._api_key = api_key

    def _auth(self, url: str) -> dict[str, str]:
        """The key goes only to imgpipe's own services: never to an object store or a CDN
        that a download link may point at (it would leak, and break presigned URLs)."""
        own = url.startswith((f"{self._ingest}/", f"{self._status}/"))
        return {"Authorization": f"Bearer {self._api_key}"} if own and self._api_key else {}

    async def submit(self, csv_path: Path, webhook_url: str | None) -> dict[str, Any]:
        content = await asyncio.to_thread(csv_path.read_bytes)
        form = aiohttp.FormData()
        form.add_field("file", content, filename=csv_path.name, content_type="text/csv")
        if webhook_url:
            form.add_field("webhook_url", webhook_url)
        return await self._json("POST", f"{self._ingest}/upload/", data=form, expect=202)

    async def status(self, request_id: str) -> dict[str, Any]:
        return await self._json("GET", f"{self._status}/status/{request_id}", expect=200)

    async def delete(self, request_id: str) -> None:
        """Delete a finished request (NotFinished while it is still being processed)."""
        url = f"{self._status}/requests/{request_id}"
        try:
            async with self._session.delete(url, headers=self._auth(url)) as response:
                if response.status == 204:
                    return
                if response.status == 404:
                    raise ApiError(f"no such request: {request_id}")
                message = await _explain(response)
                if response.status == 409:
                    raise NotFinished(message.removeprefix("409: "))
                raise ApiError(message)
        except aiohttp.ClientConnectionError as exc:
            raise ApiError(f"cannot reach {url}: {exc}; is imgpipe running?") from exc

    async def events(self, request_id: str, retries: int = 10) -> AsyncIterator[dict[str, Any]]:
        """Status documents from the live stream until the final one, reconnecting if cut."""
        last_id: str | None = None
        failures = 0
        while True:
            url = f"{self._status}/status/{request_id}/events"
            headers = {"Accept": "text/event-stream", **self._auth(url)}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with self._session.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(sock_read=60)
                ) as response:
                    if response.status != 200:
                        raise ApiError(await _explain(response))
                    async for event_id, data in _server_sent_events(response):
                        failures = 0
                        last_id = event_id or last_id
                        status: dict[str, Any] = json.loads(data)
                        yield status
                        if status["status"] in FINAL_STATES:
                            return
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures += 1
                if failures > retries:
                    raise ApiError(f"lost the progress stream: {exc}") from exc
                await asyncio.sleep(min(0.5 * failures, 5))

    async def download(self, url: str, target: Path) -> int:
        async with self._session.get(url, headers=self._auth(url)) as response:
            if response.status != 200:
                raise ApiError(await _explain(response))
            data = await response.read()
        await asyncio.to_thread(target.write_bytes, data)
        return len(data)

    async def _json(self, method: str, url: str, *, expect: int, **kwargs: Any) -> dict[str, Any]:
        try:
            headers = self._auth(url)
            async with self._session.request(method, url, headers=headers, **kwargs) as response:
                if response.status != expect:
                    raise ApiError(await _explain(response))
                body: dict[str, Any] = await response.json()
                return body
        except aiohttp.ClientConnectionError as exc:
            raise ApiError(f"cannot reach {url}: {exc}; is imgpipe running?") from exc


async def _explain(response: aiohttp.ClientResponse) -> str:
    """One line (or a short list) that tells the user what went wrong."""
    try:
        body = await response.json(content_type=None)
    except (json.JSONDecodeError, aiohttp.ContentTypeError, UnicodeDecodeError):
        return f"{response.method} {response.url} answered {response.status}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    lines = [f"{response.status}: {detail}"]
    for problem in body.get("problems", []) if isinstance(body, dict) else []:
        where = f"line {problem['line']}: " if problem.get("line") else ""
        lines.append(f"  {where}{problem['message']}")
    return "\n".join(lines)


async def _server_sent_events(
    response: aiohttp.ClientResponse,
) -> AsyncIterator[tuple[str | None, str]]:
    """(id, data) of each `status` event (the text/event-stream format, comments skipped)."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data and event == "status":
                yield event_id, "\n".join(data)
            event, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            event_id = value
