"""The image origin: a separate process serving the corpus over HTTP (aiohttp.web).

`GET /img/<name>?r=<tag>` answers the photo with the tag after the image's end marker:
decoders stop there, so every tag is a source of its own bytes (reuse cannot pass one URL's
work to another) at the same decoding cost. Every answer has an ETag and a Last-Modified, and
a matching `If-None-Match` gets 304 Not Modified, as from a real shop's server; `GET /_counts`
reports `served` (answers with a body) and `not_modified` (304s).
`POST /_control?latency_ms=N&cap=N&retry_after=N&reset=1` changes how it behaves as a host
(imgpipe_dev.origin: a latency, a cap on requests at once with 429 beyond it);
`GET /_control` reports that and its counts (requests, refused, peak at once).
It runs in its own process so that serving images never competes with the bench's own
timing loops for one interpreter's GIL.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.config import REPO
from imgpipe_dev.infra import free_port, port_open, terminate, wait_until
from imgpipe_dev.origin import HostBehaviour, control_routes

# Plain blocking HTTP (the naive baseline uses it too); never through an environment proxy.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


LAST_MODIFIED = "Thu, 01 Jan 2026 00:00:00 GMT"


def make_app(root: Path) -> web.Application:
    names = {p.name for p in root.glob("*.jpg")}
    photos: dict[str, bytes] = {}
    counts = {"served": 0, "not_modified": 0}
    host = HostBehaviour()

    async def image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in names:
            raise web.HTTPNotFound()
        tag = request.query.get("r", "")
        etag = f'"{name}-{zlib.crc32(tag.encode()):08x}"'
        headers = {"Content-Type": "image/jpeg", "ETag": etag, "Last-Modified": LAST_MODIFIED}
        if request.headers.get("If-None-Match") == etag:
            counts["not_modified"] += 1
            return web.Response(status=304, headers=headers)
        if name not in photos:
            photos[name] = (root / name).read_bytes()
        counts["served"] += 1
        return web.Response(body=photos[name] + tag.encode(), headers=headers)

    app = web.Application(middlewares=[host.middleware])

    async def answered(request: web.Request) -> web.Response:
        return web.json_response(counts)

    app.router.add_get("/img/{name}", image)
    app.router.add_get("/_counts", answered)
    app.router.add_routes(control_routes(host))
    return app


class Origin:
    """Handle on the origin process, started by `start()` and ended by `stop()`."""

    def __init__(self, root: Path, log_path: Path) -> None:
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.origin", str(self.root), str(self.port)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: port_open("127.0.0.1", self.port), 30, "the image origin")

    def url(self, name: str, tag: str) -> str:
        return f"{self.base_url}/img/{name}?r={tag}"

    def counts(self) -> dict[str, int]:
        """Answers so far: `served` (with a body) and `not_modified` (304)."""
        with HTTP.open(f"{self.base_url}/_counts", timeout=5) as response:
            state = json.load(response)
        return {"served": int(state["served"]), "not_modified": int(state["not_modified"])}

    def set_latency(self, ms: float) -> None:
        self.control(latency_ms=ms)

    def control(self, **changes: object) -> dict[str, Any]:
        """Change how the origin behaves (imgpipe_dev.origin.control_routes); its counts."""
        query = urllib.parse.urlencode({k: "" if v is None else v for k, v in changes.items()})
        request = urllib.request.Request(f"{self.base_url}/_control?{query}", method="POST")
        with HTTP.open(request, timeout=5) as response:
            counts: dict[str, Any] = json.load(response)
        return counts

    def stop(self) -> None:
        terminate(self.process)


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the bench corpus")
    parser.add_argument("root", type=Path)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    web.run_app(
        make_app(args.root),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
