"""How a test or bench image origin behaves as a host: an aiohttp middleware that adds latency,
caps the requests it serves at once (answering 429 with Retry-After beyond the cap, as a small
shop's server or a rate-limited CDN does), or stops answering for a while; and that counts
the requests, the refusals and the most requests it had open at once.

Serve the app with `handler_cancellation=True` (aiohttp's AppRunner / run_app), so a request
whose client gave up (a timeout) stops counting as open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass
class HostBehaviour:
    """The knobs (change them at any time) and the counts (`reset()` zeroes them)."""

    latency: float = 0.0  # seconds added before every answer
    cap: int | None = None  # requests served at once; beyond it, 429
    retry_after: int = 1  # seconds, in the 429's Retry-After
    requests: int = 0
    refused: int = 0
    open: int = 0  # requests arrived and not yet answered, refused ones included
    peak: int = 0  # the most `open` has been since the last reset
    _serving: int = 0
    _answering: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._answering.set()

    def stop_answering(self) -> None:
        """Requests from now on (and those waiting) get no answer until `answer_again()`."""
        self._answering.clear()

    def answer_again(self) -> None:
        self._answering.set()

    def reset(self) -> None:
        self.requests = self.refused = 0
        self.peak = self.open

    def counts(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency * 1000,
            "cap": self.cap,
            "retry_after": self.retry_after,
            "requests": self.requests,
            "refused": self.refused,
            "open": self.open,
            "peak": self.peak,
            "answering": self._answering.is_set(),
        }

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_"):  # the control routes are not the host's traffic
            return await handler(request)
        self.requests += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            if self.cap is not None and self._serving >= self.cap:
                self.refused += 1
                return web.Response(
                    status=429,
                    text="too many requests at once",
                    headers={"Retry-After": str(self.retry_after)},
                )
            self._serving += 1
            try:
                await self._answering.wait()
                if self.latency:
                    await asyncio.sleep(self.latency)
                return await handler(request)
            finally:
                self._serving -= 1
        finally:
            self.open -= 1


def control_routes(behaviour: HostBehaviour) -> list[web.RouteDef]:
    """`GET /_control`: the counts; `POST /_control?latency_ms=&cap=&retry_after=&reset=1`
    changes the knobs (an empty `cap` removes it) and zeroes the counts when asked."""

    async def control(request: web.Request) -> web.Response:
        if request.method == "POST":
            query = request.query
            if "latency_ms" in query:
                behaviour.latency = float(query["latency_ms"]) / 1000
            if "cap" in query:
                behaviour.cap = int(query["cap"]) if query["cap"] else None
            if "retry_after" in query:
                behaviour.retry_after = int(query["retry_after"])
            if query.get("reset"):
                behaviour.reset()
        return web.json_response(behaviour.counts())

    return [web.get("/_control", control), web.post("/_control", control)]
