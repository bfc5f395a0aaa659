"""A private RabbitMQ node for tests that kill the broker, so the machine's broker lives on.

It has its own AMQP port, distribution port, epmd port, node name, config and data directory.
Debian's `rabbitmq-server` drops to the `rabbitmq` user, so its directory belongs to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from imgpipe_dev.infra import free_port, port_open, wait_until


class PrivateRabbit:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"imgpipe-faults-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return os.environ | {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "node.pid"),
            # Lets `epmd -kill` stop the node's epmd while it still lists the node, as it does
            # for a moment after the node is SIGKILLed; strict epmd refuses ("living nodes in
            # database") and stays behind.
            "ERL_EPMD_RELAXED_COMMAND_CHECK": "1",
        }

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam("rabbitmq")
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True)
        wait_until(lambda: port_open("127.0.0.1", self.port), 90, f"RabbitMQ node {self.node}")

    def _beam_pid(self) -> int | None:
        try:
            return int((self.root / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the node, as a crash would."""
        pid = self._beam_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not port_open("127.0.0.1", self.port), 30, "the node to die")

    def stop(self) -> None:
        pid = self._beam_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The node started its own epmd on our port; it outlives the node unless told to go.
        subprocess.run(["epmd", "-kill"], env=self._env(), check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
