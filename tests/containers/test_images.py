"""What a reviewer checks of the images: the build context, what each image holds, who the
processes run as and where they may write."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgpipe_dev.docker_engine import docker_cli
from tests.containers.stack import REPO, SERVICES, Stack, docker

SERVICE_USER = "10001:10001"  # deploy/docker/Dockerfile
FILES = {"/data/files"}
VOLUMES: dict[str, set[str]] = {
    "ingest": set(),
    "processor": FILES,
    "status": FILES,
    "notifier": set(),
}
PACKAGES = ["imgpipe_contracts", "imgpipe_runtime", *(f"imgpipe_{s}" for s in SERVICES)]
NEVER_IN_AN_IMAGE = ["imgpipe_cli", "imgpipe_dev", "pytest", "ruff", "mypy", "moto", "secantus"]


@contextlib.contextmanager
def local_state() -> Iterator[None]:
    """`.data/` and `results/` with a file each, as after `make run` and `make test`."""
    made = []
    for name in (".data", "results"):
        folder = REPO / name
        if not folder.exists():
            folder.mkdir()
            made.append(folder)
        (folder / "context-probe").write_text("must not reach the builder\n")
    try:
        yield
    finally:
        for name in (".data", "results"):
            (REPO / name / "context-probe").unlink(missing_ok=True)
        for folder in made:
            shutil.rmtree(folder)


def test_the_build_context_leaves_out_local_state_caches_and_tests(tmp_path: Path) -> None:
    """The context the service images are built from, as BuildKit receives it (.dockerignore
    applied), exported to a folder by a build that copies all of it."""
    out = tmp_path / "context"
    command = [docker_cli(), "build", "--quiet", "--output", f"type=local,dest={out}"]
    with local_state():
        subprocess.run(
            [*command, "--file", "-", str(REPO)],
            input=b"FROM scratch\nCOPY . /\n",
            check=True,
            capture_output=True,
            env=os.environ | {"DOCKER_BUILDKIT": "1"},
            timeout=120,
        )
    top = sorted(p.name for p in out.iterdir())
    assert top == ["deploy", "pyproject.toml", "services", "uv.lock"]
    sent = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    for name in (".venv", ".data", "results", "tests", ".git", ".tools", ".env"):
        assert name not in sent
    assert not [p for p in sent if "__pycache__" in p or p.endswith(".pyc")]
    assert "services/processor/imgpipe_processor/transform.py" in sent


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_holds_its_own_service_and_nothing_else(stack: Stack, service: str) -> None:
    image = stack.inspect(stack.containers(service)[0])["Config"]["Image"]
    probe = "import importlib.util as u, sys; print(*[n for n in sys.argv[1:] if u.find_spec(n)])"
    found = docker(
        "run", "--rm", "--read-only", "--entrypoint", "python", image, "-c", probe,
        *PACKAGES, *NEVER_IN_AN_IMAGE,
    ).split()  # fmt: skip
    assert found == ["imgpipe_contracts", "imgpipe_runtime", f"imgpipe_{service}"]


def _uids(pids: list[int]) -> set[int]:
    uids: set[int] = set()
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                uids.update(int(u) for u in line.split()[1:])
    return uids


@pytest.mark.parametrize("service", SERVICES)
def test_services_run_as_non_root_and_write_only_to_their_volumes(
    stack: Stack, service: str
) -> None:
    """After the seed request (test_pipeline): no process of the container is root, its root
    filesystem is read-only and unchanged, and it mounts only its volumes and a /tmp in memory."""
    for container in stack.containers(service):
        details = stack.inspect(container)
        assert details["Config"]["User"] == SERVICE_USER
        pids = [int(p) for p in docker("top", container, "-eo", "pid").split()[1:]]
        assert pids and _uids(pids) == {10001}
        assert details["HostConfig"]["ReadonlyRootfs"] is True
        assert set(details["HostConfig"]["Tmpfs"]) == {"/tmp"}
        assert {m["Destination"] for m in details["Mounts"]} == VOLUMES[service]
        assert all(m["Type"] == "volume" for m in details["Mounts"])
        assert docker("diff", container).strip() == ""
        refused = stack.exec(container, "sh", "-c", "echo x > /app/probe")
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr
