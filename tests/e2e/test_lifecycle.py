"""Nothing outlives its parent: a SIGKILLed processor leaves no pool worker or resource
tracker behind, and a SIGKILLed `make run` launcher no service, database or bound port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from imgpipe_contracts.events import ImageRequested
from imgpipe_contracts.messaging import Broker
from imgpipe_dev.infra import free_port, port_open
from tests.conftest import SAMPLE_IMAGES, new_namespace, serving
from tests.e2e.conftest import eventually


@dataclass(frozen=True)
class Proc:
    """One process: its pid and start time (together they survive pid reuse), and command."""

    pid: int
    started: int
    command: str

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        stat = _stat(pid)
        if stat is None:
            return None
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return cls(pid, int(stat[19]), command)

    def alive(self) -> bool:
        """Running; a zombie has exited (it holds no port) and only waits to be reaped."""
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.started and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (the command name may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> set[int]:
    """Pids of the children of `pid`, whichever of its threads started them."""
    found: set[int] = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            found.update(int(child) for child in listing.read_text().split())
    return found


def descendants(pid: int) -> list[Proc]:
    found = []
    for child in children(pid):
        if (proc := Proc.of(child)) is not None:
            found += [proc, *descendants(child)]
    return found


def start(
    command: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def killed_afterwards(process: subprocess.Popen[bytes], family: list[Proc]) -> Iterator[None]:
    """Whatever the outcome, leave neither `process` nor any of `family` running."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for proc in family:
            if proc.alive():
                os.kill(proc.pid, signal.SIGKILL)


async def nothing_left(left: Callable[[], list[str]], within: float) -> None:
    """Poll until `left()` (what is still there) is empty; after `within` s, fail naming it."""
    deadline = asyncio.get_running_loop().time() + within
    while remaining := left():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still there after {within}s: {remaining}")
        await asyncio.sleep(0.1)


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

            await nothing_left(left_over, within=10)
