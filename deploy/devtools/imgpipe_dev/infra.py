"""Making sure RabbitMQ and a MongoDB-compatible server answer, starting them if not.

RabbitMQ: used where RABBITMQ_URL answers; on this machine, installed from Debian's
`rabbitmq-server` package and started when nothing answers. MongoDB: used where MONGODB_URL
answers; otherwise SecantusDB (a MongoDB wire-protocol server on WiredTiger, from PyPI) is
started with --sync-on-commit, so acknowledged writes survive a kill -9.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pymongo import MongoClient

from imgpipe_runtime.lifecycle import dying_with_this_process

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


def as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise SystemExit(f"need root to run {' '.join(command)}; run as root or install it yourself")


def ensure_rabbitmq(url: str) -> None:
    """Return once RabbitMQ answers at `url`; install and start it locally if needed."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if port_open(host, port):
        return
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"RabbitMQ does not answer at {host}:{port}; check RABBITMQ_URL")
    if shutil.which("rabbitmq-server") is None and not Path("/usr/sbin/rabbitmq-server").exists():
        print("RabbitMQ is not installed; installing Debian's rabbitmq-server", flush=True)
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(as_root(["apt-get", "update", "-q"]), check=True, env=env)
        subprocess.run(
            as_root(["apt-get", "install", "-y", "-q", "rabbitmq-server"]), check=True, env=env
        )
    if not port_open(host, port):
        print("starting rabbitmq-server", flush=True)
        subprocess.run(as_root(["rabbitmq-server", "-detached"]), check=True)

        def booted() -> bool:
            # await_startup fails at once until the node has registered with epmd; ask again.
            command = as_root(["rabbitmqctl", "-q", "await_startup", "--timeout", "30"])
            return subprocess.run(command, capture_output=True).returncode == 0

        wait_until(booted, 180, "rabbitmq-server", interval=1)
    wait_until(lambda: port_open(host, port), 60, f"RabbitMQ on {host}:{port}")


def mongodb_answers(url: str, timeout_ms: int = 1500) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()


class SecantusServer:
    """A SecantusDB server process, started and stopped by us."""

    # Seconds a SIGTERMed server may take to stop: it waits up to 5 s for its connections to
    # drain (an idle stack's usually do not: 5 s is the common case), joins its TTL sweeper
    # and writes a checkpoint (fsynced). That took over 10 s once on a loaded machine, and
    # over 20 s in 3 of 8 runs of the e2e tests on 12-04 (a launcher killed just after start).
    STOP_GRACE = 45.0

    def __init__(self, port: int, storage_path: str, log_path: Path | None = None) -> None:
        self.port = port
        self.storage_path = storage_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        # Without retryable writes: SecantusDB keeps their records in memory (so they protect
        # nothing across its restart) and scans all of them, up to 10,000, on every write;
        # measured: 0.9 ms of its CPU per bulk write without, 1.5-3.5 ms with as they fill.
        # The services take the URL as given, so a real MongoDB keeps them.
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false"

    def start(self, timeout: float = 60) -> None:
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            self.storage_path,
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ]
        self.process = subprocess.Popen(
            # SIGTERMed if we die without stopping it (see Stack.start_one).
            dying_with_this_process(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by us, after the services, not by a Ctrl-C
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SecantusDB exited with {self.process.returncode}")
            return mongodb_answers(self.url, 500)

        wait_until(ready, timeout, f"SecantusDB on port {self.port}", interval=0.2)

    def stop(self) -> None:
        terminate(self.process, grace=self.STOP_GRACE)


def terminate(process: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds; reaped either way."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_mongodb(url: str, storage_path: str, log_path: Path | None) -> SecantusServer | None:
    """Start SecantusDB on `url`'s port unless a server already answers there."""
    if mongodb_answers(url):
        return None
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"MongoDB does not answer at {url}; check MONGODB_URL")
    server = SecantusServer(parts.port or 27017, storage_path, log_path)
    print(f"no MongoDB at {url}; starting SecantusDB (data in {storage_path})", flush=True)
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure-rabbitmq"])
    parser.parse_args()
    ensure_rabbitmq(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))


if __name__ == "__main__":
    main()
