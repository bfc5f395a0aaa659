"""Making sure a Docker engine answers, installing and starting one if not (for the container
tests, `make docker`).

Used as it is when `docker info` answers. Otherwise, on a Debian machine as root: Debian's
`docker.io` package (Docker 20.10) is installed when `dockerd` is missing, and `dockerd` is
started in the background, outliving this process so the next run finds it (and its image and
build caches) again. Its log goes to /var/log/imgpipe-dockerd.log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from imgpipe_dev.infra import as_root, wait_until

DOCKERD_LOG = Path("/var/log/imgpipe-dockerd.log")
# A fresh dockerd sets up its state and iptables rules in a few seconds; allow for a busy machine.
START_TIMEOUT = 90


class DockerUnavailable(RuntimeError):
    """No Docker engine answers and none could be installed or started here."""


def docker_cli() -> str:
    """The docker client to use: Debian's (which has BuildKit built in) when installed, else the
    first on PATH. A client from 23 on needs the buildx plugin for BuildKit builds."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return candidate
    raise DockerUnavailable("no docker client; install Debian's docker.io package")


def engine_answers(timeout: float = 10) -> bool:
    docker = shutil.which("docker") or "/usr/bin/docker"
    if not Path(docker).exists():
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _install_docker_io() -> None:
    print("dockerd is not installed; installing Debian's docker.io", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = as_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"])
    if subprocess.run(install, env=env).returncode != 0:
        # The package lists may be missing or stale on a new machine.
        subprocess.run(as_root(["apt-get", "update", "-q"]), check=True, env=env)
        subprocess.run(install, check=True, env=env)


def _start_dockerd() -> None:
    print(f"starting dockerd (log: {DOCKERD_LOG})", flush=True)
    with DOCKERD_LOG.open("ab") as log:
        process = subprocess.Popen(
            as_root([shutil.which("dockerd") or "/usr/sbin/dockerd"]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the engine outlives make; its caches serve the next run
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if engine_answers(timeout=5):
            return
        if process.poll() is not None and not engine_answers(timeout=5):
            # Exited at once: another dockerd (started by someone else) may hold the pid file;
            # then that one answers soon, else this is a real failure.
            try:
                wait_until(lambda: engine_answers(timeout=5), 30, "dockerd", interval=1)
                return
            except TimeoutError:
                break
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-30:]
    raise DockerUnavailable(
        "dockerd did not answer within {}s; the end of {}:\n{}".format(
            START_TIMEOUT, DOCKERD_LOG, "\n".join(tail)
        )
    )


def ensure_docker() -> None:
    """Return once a Docker engine answers; install and start one if needed."""
    if engine_answers():
        return
    if shutil.which("dockerd") is None and not Path("/usr/sbin/dockerd").exists():
        _install_docker_io()
    _start_dockerd()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ensure"])
    parser.parse_args()
    try:
        ensure_docker()
    except (DockerUnavailable, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"Docker could not be set up: {exc}") from exc


if __name__ == "__main__":
    main()
