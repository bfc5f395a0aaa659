"""Nothing outlives its parent: a SIGKILLed processor leaves no pool worker or resource
tracker behind, and a SIGKILLed `make run` launcher no service, database or bound port."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from imgpipe_contracts.events import ImageRequested
from imgpipe_dev.infra import SecantusServer, free_port, port_open
from imgpipe_runtime.broker import Broker
from tests.conftest import SAMPLE_IMAGES, new_namespace, serving
from tests.e2e.conftest import eventually
from tests.processes import Proc, descendants, killed_afterwards, nothing_left


def start(
    command: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


async def test_a_killed_processor_leaves_no_pool_worker_or_resource_tracker(
    rabbitmq_url: str, mongodb_url: str, tmp_path: Path
) -> None:
    photo = next(SAMPLE_IMAGES.glob("*.jpg"))
    origin_port = free_port()

    async def serve_photo(request: web.Request) -> web.FileResponse:
        return web.FileResponse(photo)

    app = web.Application()
    app.router.add_get("/photo.jpg", serve_photo)
    async with (
        new_namespace(rabbitmq_url, mongodb_url) as ns,
        serving(app, origin_port),
    ):
        env = (
            os.environ
            | ns.env()
            | {
                "DATA_DIR": str(tmp_path / "files"),
                "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
                "METRICS_PORT": str(free_port()),
                "WORKERS": "2",
            }
        )
        log_path = tmp_path / "processor.log"
        processor = start([sys.executable, "-m", "imgpipe_processor"], env, log_path)
        family: list[Proc] = []
        with killed_afterwards(processor, family):
            # Pool workers start with the first job.
            broker = Broker(ns.broker_settings(), "test-lifecycle")
            await broker.start()
            await broker.publish(
                ImageRequested(
                    request_id=uuid.uuid4().hex,
                    row_index=0,
                    position=0,
                    serial_number=1,
                    product_name="photo",
                    url=f"http://127.0.0.1:{origin_port}/photo.jpg",
                )
            )
            await broker.close()

            async def stored() -> bool:
                assert processor.poll() is None, _log_tail(log_path)
                return any((tmp_path / "files").rglob("*.jpg"))

            await eventually(stored, within=60)
            family += descendants(processor.pid)
            commands = [proc.command for proc in family]
            assert any("resource_tracker" in c for c in commands), commands
            assert any("spawn_main" in c for c in commands), commands

            processor.kill()
            processor.wait()

            await nothing_left(lambda: [p.command for p in family if p.alive()], within=10)


async def test_a_killed_launcher_leaves_no_service_database_or_bound_port(
    rabbitmq_url: str, mongodb_url: str, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("INGEST_PORT", "STATUS_PORT", "NOTIFIER_PORT")}
    async with new_namespace(rabbitmq_url, mongodb_url) as ns:
        env = (
            os.environ
            | ns.env()
            | {name: str(port) for name, port in ports.items()}
            | {
                # No MongoDB answers there, so the launcher starts SecantusDB, as `make run` does.
                "MONGODB_URL": f"mongodb://127.0.0.1:{free_port()}",
                "METRICS_PORT": str(free_port()),
                "WORKERS": "1",
            }
        )
        log_path = tmp_path / "launcher.log"
        # cwd: the launcher keeps its data in ./.data.
        launcher = start([sys.executable, "-m", "imgpipe_dev.run"], env, log_path, cwd=tmp_path)
        family: list[Proc] = []
        with killed_afterwards(launcher, family):

            async def up() -> bool:
                assert launcher.poll() is None, _log_tail(log_path)
                return "imgpipe is up" in log_path.read_text(errors="replace")

            await eventually(up, within=120)
            family += descendants(launcher.pid)
            commands = [proc.command for proc in family]
            for module in ("secantus", "ingest", "processor", "status", "notifier"):
                assert any(module in c for c in commands), commands

            launcher.kill()
            launcher.wait()

            def left_over() -> list[str]:
                bound = [f"port {p}" for p in ports.values() if port_open("127.0.0.1", p)]
                return bound + [proc.command for proc in family if proc.alive()]

            # The services stop within seconds; the database it started as long as its own
            # stop allows it (it gets the same SIGTERM).
            await nothing_left(left_over, within=SecantusServer.STOP_GRACE)
