"""The image origin: a separate process serving the corpus over HTTP (aiohttp.web).

`GET /img/<name>` (any query string) answers the file, after the configured latency;
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
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.config import REPO
from imgpipe_dev.infra import free_port, port_open, terminate, wait_until
from imgpipe_dev.origin import HostBehaviour, control_routes

# Plain blocking HTTP (the naive baseline uses it too); never through an environment proxy.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def make_app(root: Path) -> web.Application:
    names = {p.name for p in root.glob("*.jpg")}
    host = HostBehaviour()

    async def image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in names:
            raise web.HTTPNotFound()
        return web.FileResponse(root / name, headers={"Content-Type": "image/jpeg"})

    app = web.Application(middlewares=[host.middleware])
    app.router.add_get("/img/{name}", image)
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
