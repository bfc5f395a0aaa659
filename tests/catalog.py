"""A shop's image server for the reuse tests: many small distinct photos, each under
`/<mode>/<n>.jpg`, served the way real origins do, and counted per path.

Modes: `etag` (ETag and Last-Modified, 304 to a matching conditional GET), `none` (no
validators at all), `maxage` (validators and `Cache-Control: max-age=3600`), `nostore`
(validators and `Cache-Control: no-store`). `change(n)` gives photo n new bytes (and so a new
ETag and date) under the same URLs, as a shop replacing an image does.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web
from PIL import Image

MODES = ("etag", "none", "maxage", "nostore")
SIZE = (96, 64)


def photo(n: int, version: int) -> bytes:
    """A small JPEG, distinct for every (n, version): noise over a colour of its own."""
    rng = random.Random(f"{n}:{version}")
    base = Image.new("RGB", SIZE, tuple(rng.randrange(256) for _ in range(3)))
    noise = Image.frombytes("RGB", SIZE, rng.randbytes(SIZE[0] * SIZE[1] * 3))
    buffer = io.BytesIO()
    Image.blend(base, noise, 0.3).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Catalog:
    """The origin's state: photo versions, and what it was asked per path."""

    base_url: str = ""
    versions: Counter[int] = field(default_factory=Counter)
    full: Counter[str] = field(default_factory=Counter)  # answers with a body
    conditional: Counter[str] = field(default_factory=Counter)  # requests with validators
    not_modified: Counter[str] = field(default_factory=Counter)  # 304s
    _bytes: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def url(self, mode: str, n: int) -> str:
        return f"{self.base_url}/{mode}/{n}.jpg"

    def change(self, n: int) -> None:
        self.versions[n] += 1

    def current(self, n: int) -> bytes:
        key = (n, self.versions[n])
        if key not in self._bytes:
            self._bytes[key] = photo(*key)
        return self._bytes[key]

    def reset_counts(self) -> None:
        for counts in (self.full, self.conditional, self.not_modified):
            counts.clear()

    def totals(self) -> tuple[int, int, int]:
        """(full downloads, conditional requests, 304s) over every path."""
        return (
            sum(self.full.values()),
            sum(self.conditional.values()),
            sum(self.not_modified.values()),
        )

    def app(self) -> web.Application:
        epoch = datetime(2026, 1, 1, tzinfo=UTC)

        async def image(request: web.Request) -> web.Response:
            mode, name = request.match_info["mode"], request.match_info["name"]
            if mode not in MODES or not name.isdigit():
                raise web.HTTPNotFound()
            n = int(name)
            body = self.current(n)
            etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            modified = format_datetime(epoch + timedelta(days=self.versions[n]), usegmt=True)
            headers: dict[str, str] = {"Content-Type": "image/jpeg"}
            if mode != "none":
                headers |= {"ETag": etag, "Last-Modified": modified}
            if mode == "maxage":
                headers["Cache-Control"] = "max-age=3600"
            if mode == "nostore":
                headers["Cache-Control"] = "no-store"
            asked = request.headers.get("If-None-Match")
            if asked is not None or request.headers.get("If-Modified-Since") is not None:
                self.conditional[request.path] += 1
                # If-None-Match decides when present (RFC 9110 §13.2.2).
                if mode != "none" and (
                    asked == etag
                    if asked is not None
                    else request.headers["If-Modified-Since"] == modified
                ):
                    self.not_modified[request.path] += 1
                    return web.Response(status=304, headers=headers)
            self.full[request.path] += 1
            return web.Response(body=body, headers=headers)

        app = web.Application()
        app.router.add_get("/{mode}/{name}.jpg", image)
        return app
