"""Running the four services as separate processes (for `make run`, the demo and the tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from imgpipe_dev.infra import wait_until
from imgpipe_runtime.lifecycle import dying_with_this_process

MODULES = {
    "ingest": "imgpipe_ingest",
    "processor": "imgpipe_processor",
    "status": "imgpipe_status",
    "notifier": "imgpipe_notifier",
}
HEALTH_PORTS = {"ingest": "INGEST_PORT", "status": "STATUS_PORT", "notifier": "NOTIFIER_PORT"}


def _healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _copy_with_prefix(stream: IO[bytes], name: str) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>9} | {line.decode(errors='replace')}")
        sys.stdout.flush()


class Stack:
    """The services, each in its own process; output to `log_dir` files or the terminal."""

    def __init__(self, env: Mapping[str, str], log_dir: Path | None = None) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, names: Iterable[str] = MODULES) -> None:
        for name in names:
            self.start_one(name)

    def start_one(
        self, name: str, instance: str | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        """Start service `name`; a second `instance` of it runs beside the first."""
        key = f"{name}-{instance}" if instance else name
        # A launcher killed outright (SIGKILL included) cannot stop its services, so the
        # kernel sends them SIGTERM (a clean stop for them) when it dies. A wrapper sets that
        # up and execs the service. Not a preexec_fn: it runs Python between fork and exec,
        # which can deadlock on a lock another thread holds (the output copiers below). Not a
        # start-up hook in each service: the wrapper works for any program, SecantusDB too.
        # The signal follows the thread that calls Popen: start services from the main thread.
        command = dying_with_this_process([sys.executable, "-m", MODULES[name]])
        environment = self.env | dict(env or {})
        # Own session: a Ctrl-C reaches only the launcher, which stops services in order.
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{key}.log", "ab") as log:
                process = subprocess.Popen(
                    command,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        else:
            process = subprocess.Popen(
                command,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert process.stdout is not None
            threading.Thread(
                target=_copy_with_prefix, args=(process.stdout, key), daemon=True
            ).start()
        self.processes[key] = process

    def wait_healthy(self, timeout: float = 90) -> None:
        def all_up() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see its log")
            return all(
                _healthy(self.env[var])
                for name, var in HEALTH_PORTS.items()
                if name in self.processes
            )

        wait_until(all_up, timeout, "the services", interval=0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.kill(process.pid, sig)
        process.wait()

    def stop(self, timeout: float = 15) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
