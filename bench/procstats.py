"""CPU and memory of named process groups, from /proc (a thread samples every 0.5 s).

ps's %CPU is an average over each process's whole life; here the CPU seconds a group used
between the start and end of a run are divided by the run's wall time, so 100% is one core
busy for the whole run (the machine has os.cpu_count() x 100%). A group is a set of root pids
and all their descendants (e.g. the processor and its pool workers)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of `pid`, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def machine_times() -> tuple[float, float, float]:
    """(busy, idle, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) / TICK for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    steal = values[7] if len(values) > 7 else 0.0
    busy = sum(values[:8]) - idle - steal  # guest time is already in user
    return busy, idle, steal


def machine_busy(seconds: float = 2.0) -> float:
    """How busy the machine is now, in % of all its cores (to warn before measuring)."""
    busy0, idle0, steal0 = machine_times()
    time.sleep(seconds)
    busy1, idle1, steal1 = machine_times()
    total = (busy1 - busy0) + (idle1 - idle0) + (steal1 - steal0)
    return 100 * (busy1 - busy0) / total if total else 0.0


def memory_kb(pid: int, key: str) -> int | None:
    """A /proc/<pid>/status field in kB, e.g. VmRSS or VmHWM (peak resident size)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pids_named(comm: str) -> list[int]:
    """Pids whose command name is `comm` (e.g. RabbitMQ's beam.smp); read-only."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuSampler:
    """Use as a context manager around a run; `result()` gives %CPU and peak RSS per group."""

    def __init__(
        self, groups: dict[str, list[int]], split: tuple[str, ...] = (), interval: float = 0.5
    ) -> None:
        # A group named in `split` counts its descendants apart, as "<group> children".
        self.groups = groups | {f"{name} children": [] for name in split if name in groups}
        self.split = split
        self.interval = interval
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._member: dict[int, str] = {}
        self._peak_rss: dict[str, int] = dict.fromkeys(self.groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = self._ended = 0.0
        self._machine_start = self._machine_end = (0.0, 0.0, 0.0)
        self._initial = True

    def _sample(self) -> None:
        stats: dict[int, tuple[int, float]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                stats[int(entry.name)] = stat
        member = {pid: name for name, roots in self.groups.items() for pid in roots}
        changed = True
        while changed:  # descendants inherit their ancestor's group
            changed = False
            for pid, (parent, _) in stats.items():
                if pid not in member and parent in member:
                    name = member[parent]
                    member[pid] = f"{name} children" if name in self.split else name
                    changed = True
        rss: dict[str, int] = dict.fromkeys(self.groups, 0)
        for pid, name in member.items():
            if pid not in stats:
                continue
            cpu = stats[pid][1]
            # A process first seen after the start was born during the run: count it all.
            self._first.setdefault(pid, cpu if self._initial else 0.0)
            self._last[pid] = cpu
            self._member[pid] = name
            rss[name] += memory_kb(pid, "VmRSS") or 0
        self._initial = False
        for name, kb in rss.items():
            self._peak_rss[name] = max(self._peak_rss[name], kb)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._sample()
        self._machine_start = machine_times()
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._machine_end = machine_times()
        self._ended = time.perf_counter()

    def result(self) -> dict[str, dict[str, float]]:
        wall = self._ended - self._started
        used: dict[str, float] = dict.fromkeys(self.groups, 0.0)
        for pid, name in self._member.items():
            used[name] += self._last[pid] - self._first[pid]
        busy, idle, steal = (
            e - s for s, e in zip(self._machine_start, self._machine_end, strict=True)
        )
        # Whatever else ran on the machine meanwhile (other users' builds and tests): a run
        # with a large share here measured a machine that was not ours alone.
        used["(other processes)"] = max(0.0, busy - sum(used.values()))
        used["(idle)"], used["(steal)"] = idle, steal
        return {
            name: {
                "cpu_percent": round(100 * seconds / wall, 1),
                "cpu_seconds": round(seconds, 2),
                "peak_rss_mb": round(self._peak_rss.get(name, 0) / 1024, 1),
            }
            for name, seconds in used.items()
        }
