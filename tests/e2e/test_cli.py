"""The `imgpipe` command against the running system, in a terminal and in a pipe."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Origin, RunningStack

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli_env(stack: RunningStack) -> dict[str, str]:
    return os.environ | {
        "IMGPIPE_INGEST_URL": stack.ingest_url,
        "IMGPIPE_STATUS_URL": stack.status_url,
        "COLUMNS": "120",
        "TERM": "xterm-256color",
    }


def in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `imgpipe args` with a pseudo-terminal as its stdio; return exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execve(sys.executable, [sys.executable, "-m", "imgpipe_cli", *args], env)
    output = bytearray()
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), output.decode(errors="replace")


def in_pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgpipe_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_csv(path: Path, origin: Origin, names: list[str]) -> Path:
    rows = [f"{n + 1},SKU{n + 1},{origin.base_url}/{name}" for n, name in enumerate(names)]
    path.write_text("S. No.,Product Name,Input Image Urls\n" + "\n".join(rows) + "\n")
    return path


async def test_submit_and_wait_in_a_terminal_shows_progress_to_the_total_and_exits_0(
    running_stack: RunningStack, origin: Origin, tmp_path: Path
) -> None:
    names = ["cat.jpg", "coffee.jpg", "astronaut.jpg", "hubble.jpg"]
    csv_file = write_csv(tmp_path / "products.csv", origin, names)
    code, output = await asyncio.to_thread(
        in_terminal, ["submit", str(csv_file), "--wait"], cli_env(running_stack)
    )
    text = ANSI.sub("", output)
    assert code == 0, output
    assert "4/4" in text
    assert "Completed, 4 processed, 0 failed of 4" in text
    assert ANSI.search(output), "a terminal gets the live progress bar"


async def test_submit_json_in_a_pipe_prints_one_document_and_exits_3_with_failures(
    running_stack: RunningStack, origin: Origin, tmp_path: Path
) -> None:
    csv_file = write_csv(tmp_path / "products.csv", origin, ["cat.jpg", "missing.jpg"])
    result = await asyncio.to_thread(
        in_pipe, ["submit", str(csv_file), "--wait", "--json"], cli_env(running_stack)
    )
    assert result.returncode == 3, result.stderr
    assert not ANSI.search(result.stdout + result.stderr)
    status = json.loads(result.stdout)
    assert status["status"] == "Completed"
    assert status["progress"] == {"total": 2, "processed": 1, "failed": 1}
    assert status["failures_by_reason"] == {"http_404": 1}

    request_id = status["request_id"]
    again = await asyncio.to_thread(
        in_pipe, ["status", request_id, "--json"], cli_env(running_stack)
    )
    assert again.returncode == 3
    assert json.loads(again.stdout)["progress"] == status["progress"]

    target = tmp_path / "out.csv"
    saved = await asyncio.to_thread(
        in_pipe, ["download", request_id, "-o", str(target)], cli_env(running_stack)
    )
    assert saved.returncode == 0, saved.stderr
    assert target.read_text().startswith("S. No.,Product Name,Input Image Urls,Output Image Urls")


async def test_a_rejected_file_is_one_clear_error_not_a_traceback(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("S. No.,Product Name,Input Image Urls\n1,SKU1,ftp://x/a.jpg\n")
    result = await asyncio.to_thread(in_pipe, ["submit", str(bad)], cli_env(running_stack))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "line 2: URL 'ftp://x/a.jpg' must start with http:// or https://" in result.stderr


async def test_an_unknown_request_and_a_missing_file_have_distinct_exit_codes(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    unknown = await asyncio.to_thread(in_pipe, ["status", "f" * 32], cli_env(running_stack))
    assert unknown.returncode == 1
    assert "404" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = await asyncio.to_thread(
        in_pipe, ["submit", str(tmp_path / "nope.csv")], cli_env(running_stack)
    )
    assert missing.returncode == 2
