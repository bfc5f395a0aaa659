"""`make run`: the whole system on this machine, in the foreground, until Ctrl-C.

Uses the RabbitMQ at RABBITMQ_URL (starting or installing it locally if none answers) and the
MongoDB at MONGODB_URL (starting SecantusDB with its data in .data/mongo if none answers).
Downloads and webhooks to local addresses are allowed, as the seed's workflow needs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from imgpipe_dev.infra import SecantusServer, ensure_mongodb, ensure_rabbitmq, port_open
from imgpipe_dev.stack import Stack

DATA = Path(".data")


def local_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for running locally: the defaults below, overridden by `environ`."""
    status_port = environ.get("STATUS_PORT", "8010")
    defaults = {
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "MONGODB_URL": "mongodb://127.0.0.1:27017",
        "INGEST_PORT": "8000",
        "STATUS_PORT": status_port,
        "NOTIFIER_PORT": "8020",
        "DATA_DIR": str(DATA / "files"),
        "PUBLIC_BASE_URL": f"http://localhost:{status_port}",
        "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",
        # The services write to our pipe, not the terminal: tell them who reads.
        "LOG_FORMAT": "text" if sys.stdout.isatty() else "json",
    }
    return defaults | dict(environ)


@contextlib.contextmanager
def running_system(env: Mapping[str, str], log_dir: Path | None) -> Iterator[Stack]:
    """Broker and database made sure of, the four services started and healthy."""
    for variable in ("INGEST_PORT", "STATUS_PORT", "NOTIFIER_PORT"):
        if port_open("127.0.0.1", int(env[variable])):
            raise SystemExit(
                f"port {env[variable]} is in use (is imgpipe already running?); "
                f"stop what listens there or set {variable}"
            )
    DATA.mkdir(exist_ok=True)
    ensure_rabbitmq(env["RABBITMQ_URL"])
    database: SecantusServer | None = ensure_mongodb(
        env["MONGODB_URL"], str(DATA / "mongo"), DATA / "secantus.log"
    )
    if database is not None:
        env = {**env, "MONGODB_URL": database.url}
    stack = Stack(env, log_dir=log_dir)
    try:
        stack.start()
        stack.wait_healthy()
        yield stack
    finally:
        # A second Ctrl-C must not abandon half-stopped services.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        if database is not None:
            database.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    env = local_env()
    with running_system(env, log_dir=None) as stack:
        print(
            f"\nimgpipe is up: upload at http://localhost:{env['INGEST_PORT']}/upload/, "
            f"status at {env['PUBLIC_BASE_URL']}/status/<id>, "
            f"API docs at http://localhost:{env['INGEST_PORT']}/docs. Ctrl-C stops it.\n",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in stack.processes.values()):
                time.sleep(0.5)
            dead = [n for n, p in stack.processes.items() if p.poll() is not None]
            print(f"{', '.join(dead)} stopped unexpectedly; shutting down", flush=True)
        print("stopping imgpipe", flush=True)


if __name__ == "__main__":
    main()
