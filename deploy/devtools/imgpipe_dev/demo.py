"""`make demo`: start the system, serve the sample photos on port 8001, upload a seed-style
CSV, wait for completion, and print the status, the output CSV and the webhook that arrived."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp

from imgpipe_dev.run import DATA, local_env, running_system

IMAGES = Path(__file__).resolve().parents[3] / "demo" / "images"
IMAGE_PORT = int(os.environ.get("DEMO_IMAGE_PORT", "8001"))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_images() -> ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(IMAGES))
    server = ThreadingHTTPServer(("127.0.0.1", IMAGE_PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def demo_csv() -> str:
    base = f"http://localhost:{IMAGE_PORT}"
    return (
        "S. No.,Product Name,Input Image Urls\n"
        f'1,SKU1,"{base}/cat.jpg,{base}/coffee.jpg"\n'
        f"2,SKU2,{base}/astronaut.jpg\n"
        f'3,SKU3,"{base}/hubble.jpg, {base}/no-such-photo.jpg"\n'
    )


async def run_demo(env: dict[str, str]) -> None:
    ingest = f"http://localhost:{env['INGEST_PORT']}"
    notifier = f"http://localhost:{env['NOTIFIER_PORT']}"
    text = demo_csv()
    print(f"Uploading this CSV to {ingest}/upload/:\n\n{text}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        form = aiohttp.FormData()
        form.add_field("file", text.encode(), filename="products.csv", content_type="text/csv")
        form.add_field("webhook_url", f"{notifier}/webhook/")
        async with session.post(f"{ingest}/upload/", data=form) as response:
            accepted = await response.json()
        print(f"-> {response.status} {json.dumps(accepted)}\n")
        status: dict[str, Any] = {}
        for _ in range(600):
            async with session.get(accepted["status_url"]) as response:
                status = await response.json()
            if status["status"] in ("Completed", "Failed"):
                break
            await asyncio.sleep(0.1)
        print(f"Status:\n{json.dumps(status, indent=2)}\n")
        async with session.get(status["output_csv_url"]) as response:
            print(f"Output CSV ({status['output_csv_url']}):\n\n{await response.text()}")
        received: list[dict[str, Any]] = []
        for _ in range(100):
            async with session.get(f"{notifier}/webhook/") as response:
                received = [
                    w
                    for w in await response.json()
                    if w["payload"].get("request_id") == accepted["request_id"]
                ]
            if received:
                break
            await asyncio.sleep(0.1)
        print(f"Webhook received by {notifier}/webhook/:\n{json.dumps(received, indent=2)}\n")


def main() -> None:
    env = local_env()
    server = serve_images()
    try:
        with running_system(env, log_dir=DATA / "demo-logs"):
            asyncio.run(run_demo(env))
        if env.get("STORAGE_BACKEND") == "s3":
            where = f"bucket {env.get('S3_BUCKET')!r} under {env.get('S3_PREFIX', '')}images/"
        else:
            where = str(Path(env["DATA_DIR"]).resolve() / "images")
        print(f"Processed images are in {where}")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
