"""The parent-death wrapper of imgpipe_runtime.lifecycle, on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from imgpipe_dev.infra import wait_until
from tests.processes import Proc

STARTS_A_CHILD_AND_LEAVES = """
import subprocess
from imgpipe_runtime.lifecycle import dying_with_this_process
# Not on our pipes: subprocess.run would wait for the child to close them as well.
quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
child = subprocess.Popen(dying_with_this_process(["sleep", "60"]), **quiet)
print(child.pid)
"""


def test_a_wrapped_command_ends_when_its_parent_exits() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", STARTS_A_CHILD_AND_LEAVES], capture_output=True, text=True
    )
    assert parent.returncode == 0, parent.stderr
    child = Proc.of(int(parent.stdout))
    try:
        wait_until(lambda: child is None or not child.alive(), 5, "the end of the orphan")
    finally:
        if child is not None and child.alive():
            os.kill(child.pid, signal.SIGKILL)


def test_a_command_whose_parent_died_before_it_asked_never_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    # Pid 1 is not this child's parent: as if its real parent had died and it had been
    # re-parented before it could ask for the signal.
    wrapped = [sys.executable, "-m", "imgpipe_runtime.lifecycle", "1", "SIGTERM"]
    finished = subprocess.run([*wrapped, "touch", str(ran)], check=False)
    assert finished.returncode == -signal.SIGTERM
    assert not ran.exists()
