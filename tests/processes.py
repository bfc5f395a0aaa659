"""Looking at processes from a test through Linux's /proc: who started whom, who is still alive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# What reading /proc/<pid>/... raises once that process has gone (ESRCH while it is reaped).
_GONE = (FileNotFoundError, ProcessLookupError)


@dataclass(frozen=True)
class Proc:
    """One process: its pid and start time (together they survive pid reuse), and command."""

    pid: int
    started: int
    command: str

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        stat = _stat(pid)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except _GONE:
            return None
        return None if stat is None else cls(pid, int(stat[19]), command)

    def alive(self) -> bool:
        """Running; a zombie has exited (it holds no port) and only waits to be reaped."""
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.started and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (the command name may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except _GONE:
        return None
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> set[int]:
    """Pids of the children of `pid`, whichever of its threads started them."""
    found: set[int] = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(*_GONE):  # a thread that ended meanwhile
            found.update(int(child) for child in listing.read_text().split())
    return found


def descendants(pid: int) -> list[Proc]:
    """The children of `pid`, theirs, and so on, as they are now."""
    found = []
    for child in children(pid):
        if (proc := Proc.of(child)) is not None:
            found += [proc, *descendants(child)]
    return found


@contextlib.contextmanager
def killed_afterwards(process: subprocess.Popen[bytes], family: list[Proc]) -> Iterator[None]:
    """Whatever the outcome, leave neither `process` nor any of `family` running."""
    try:
        yield
    finally:
        if process.poll() is None:
            family = [*family, *descendants(process.pid)]
            process.kill()
        process.wait()
        for proc in family:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


async def nothing_left(left: Callable[[], list[str]], within: float) -> None:
    """Poll until `left()` (what is still there) is empty; after `within` s, fail naming it."""
    deadline = asyncio.get_running_loop().time() + within
    while remaining := left():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still there after {within}s: {remaining}")
        await asyncio.sleep(0.1)
