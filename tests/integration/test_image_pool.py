"""The processor's image pool as a real process pool: started whole, at the niceness asked."""

from __future__ import annotations

import os
from pathlib import Path

from imgpipe_processor.pool import ImagePool


def children_with_niceness() -> dict[int, tuple[str, int]]:
    """This process's children: pid -> (command line, niceness), from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # After the command: state, ppid, ... ; niceness is field 19 of stat, here index 16.
        if int(fields[1]) == os.getpid():
            found[int(stat.parent.name)] = (cmdline, int(fields[16]))
    return found


async def test_warm_up_starts_every_worker_at_the_pools_niceness() -> None:
    pool = ImagePool(workers=2, max_pixels=1_000_000, quality=50, nice=7)
    try:
        await pool.warm_up()

        workers = {
            pid: nice
            for pid, (cmdline, nice) in children_with_niceness().items()
            if "spawn_main" in cmdline  # a pool worker, not the resource tracker or a server
        }
        assert len(workers) == 2
        assert set(workers.values()) == {os.nice(0) + 7}
    finally:
        pool.shutdown()
