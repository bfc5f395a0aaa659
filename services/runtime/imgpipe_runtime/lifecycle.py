"""Child processes that die with their parent.

A process killed with SIGKILL cannot stop its children: they are re-parented to init and run
on, holding ports, locks, memory and queue consumers. Linux can signal a child when its parent
dies instead (`prctl(PR_SET_PDEATHSIG)`, see prctl(2)); this module asks for that through
ctypes, so it needs nothing beyond the standard library, and does nothing on other systems.

Two properties of PR_SET_PDEATHSIG shape how to use it:

- The signal follows the parent *thread* that created the child: it is sent when that thread
  ends, even if the rest of the parent runs on. Start such children from a thread that lives as
  long as the process (the main thread, or an asyncio loop running in it), never from a pool
  thread such as `asyncio.to_thread`'s.
- The setting survives `execve` (except of set-user-ID programs), so a wrapper can set it and
  then become the real program: `python -m imgpipe_runtime.lifecycle PARENT_PID SIGNAL
  COMMAND...`, built by `dying_with_this_process`. Unlike a `preexec_fn`, that is safe in a
  parent that runs threads, and it works for programs that are not ours.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: signal.Signals, parent_pid: int) -> None:
    """Have the kernel send `sig` to this process when its parent, `parent_pid`, dies.

    The parent may already have died before we asked (then we were re-parented and no signal
    will ever come): in that case `sig` is raised at once, which is what a moment's delay in
    the parent's death would have given. A no-op off Linux.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        signal.raise_signal(sig)


def dying_with_this_process(
    command: Sequence[str], sig: signal.Signals = signal.SIGTERM
) -> list[str]:
    """`command` wrapped so that, started by this process, it gets `sig` when this process dies.

    The pid the child will see as its parent's is this process's; off Linux, `command` as is.
    """
    if sys.platform != "linux":
        return list(command)
    return [sys.executable, "-m", __name__, str(os.getpid()), sig.name, *command]


def _exec_dying_with_parent(argv: Sequence[str]) -> None:
    """`PARENT_PID SIGNAL COMMAND...`: set the parent-death signal, then become COMMAND."""
    parent_pid, sig_name, *command = argv
    die_with_parent(signal.Signals[sig_name], int(parent_pid))
    os.execvp(command[0], command)


if __name__ == "__main__":
    _exec_dying_with_parent(sys.argv[1:])
