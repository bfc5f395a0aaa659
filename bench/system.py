"""The real system for runs 2 and 4-7: its own SecantusDB (temp dir, --sync-on-commit), the
four services as processes in their own broker namespace, and a webhook receiver; for run 2s,
a local S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aiohttp import web

from imgpipe_dev.infra import SecantusServer, ensure_rabbitmq, free_port
from imgpipe_dev.s3local import LocalS3
from imgpipe_dev.stack import Stack
from imgpipe_runtime.declare import delete_topology
from imgpipe_runtime.settings import BrokerSettings


@dataclass
class System:
    stack: Stack
    database: SecantusServer
    env: dict[str, str]
    ingest_url: str
    status_url: str
    data_dir: Path
    # Other processes whose CPU the runs report (e.g. the image origin), by name.
    watch: dict[str, list[int]] = field(default_factory=dict)

    def pid(self, service: str) -> int:
        return int(self.stack.processes[service].pid)


def _env(rabbitmq_url: str, mongodb_url: str, root: Path) -> dict[str, str]:
    token = uuid.uuid4().hex[:10]
    ports = {
        name: str(free_port())
        for name in ("INGEST_PORT", "STATUS_PORT", "NOTIFIER_PORT", "METRICS_PORT")
    }
    return (
        dict(os.environ)
        | ports
        | {
            "RABBITMQ_URL": rabbitmq_url,
            "BROKER_PREFIX": f"bench-{token}.",
            "MONGODB_URL": mongodb_url,
            "MONGODB_DB": f"imgpipe_bench_{token}",
            "DATA_DIR": str(root / "files"),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['STATUS_PORT']}",
            "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )


async def _delete_namespace(env: dict[str, str]) -> None:
    settings = BrokerSettings(rabbitmq_url=env["RABBITMQ_URL"], broker_prefix=env["BROKER_PREFIX"])
    connection = await aio_pika.connect(settings.rabbitmq_url, timeout=10)
    async with connection:
        await delete_topology(await connection.channel(), settings.topology())


@contextlib.asynccontextmanager
async def running_system(
    rabbitmq_url: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[System]:
    """Start everything (the services with `extra_env` too); on exit stop it all and remove
    the queues, database and files."""
    root = Path(tempfile.mkdtemp(prefix="imgpipe-bench-"))
    await asyncio.to_thread(ensure_rabbitmq, rabbitmq_url)
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    database = SecantusServer(free_port(), str(root / "mongo"), log_dir / "secantus.log")
    env = _env(rabbitmq_url, database.url, root) | (extra_env or {})
    stack = Stack(env, log_dir=log_dir)
    try:
        await asyncio.to_thread(database.start)
        stack.start()
        await asyncio.to_thread(stack.wait_healthy)
        yield System(
            stack,
            database,
            env,
            ingest_url=f"http://127.0.0.1:{env['INGEST_PORT']}",
            status_url=env["PUBLIC_BASE_URL"],
            data_dir=root / "files",
        )
    finally:
        await asyncio.to_thread(stack.stop)
        try:
            await _delete_namespace(env)
        except Exception as exc:
            print(f"could not delete the queues under {env['BROKER_PREFIX']}: {exc!r}")
        await asyncio.to_thread(database.stop)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def on_s3(system: System, log_dir: Path) -> AsyncIterator[LocalS3]:
    """Processor and status restarted on the s3 backend, against a local S3 server (moto's
    server mode, a process of its own whose CPU the runs report as `moto`)."""
    s3 = LocalS3(free_port(), "imgpipe-bench", log_dir / "moto.log")
    await asyncio.to_thread(s3.start)
    try:
        for name in ("processor", "status"):
            await asyncio.to_thread(system.stack.kill, name, signal.SIGTERM)
            system.stack.start_one(name, env=s3.env())
        await asyncio.to_thread(system.stack.wait_healthy)
        assert s3.process is not None
        system.watch["moto"] = [s3.process.pid]
        yield s3
    finally:
        system.watch.pop("moto", None)
        await asyncio.to_thread(s3.stop)


@dataclass
class WebhookReceiver:
    """Records when each request's webhook arrived (perf_counter), keyed by request id."""

    url: str = ""
    arrivals: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    def _future(self, request_id: str) -> asyncio.Future[float]:
        if request_id not in self.arrivals:
            self.arrivals[request_id] = asyncio.get_running_loop().create_future()
        return self.arrivals[request_id]

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        payload = await request.json()
        future = self._future(str(payload.get("request_id")))
        if not future.done():
            future.set_result(arrived)
        return web.json_response({"ok": True})

    async def arrival(self, request_id: str, within: float) -> float:
        return await asyncio.wait_for(asyncio.shield(self._future(request_id)), within)


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    port = free_port()
    receiver = WebhookReceiver(f"http://127.0.0.1:{port}/hook")
    app = web.Application()
    app.router.add_post("/hook", receiver._hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
