"""CPU seconds used by process trees, read from /proc (Linux), to show who is busy under load."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds incl. exited waited-for children) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid = int(fields[1])
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        found[int(entry.name)] = (ppid, ticks / _TICK)
    return found


def tree_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named root process and all its live descendants."""
    stats = _stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    totals = {}
    for name, root in roots.items():
        todo, seconds = [root], 0.0
        while todo:
            pid = todo.pop()
            seconds += stats.get(pid, (0, 0.0))[1]
            todo += children.get(pid, [])
        totals[name] = seconds
    return totals


def machine_seconds() -> float:
    """CPU seconds all CPUs of the machine have been busy (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def children_seconds() -> float:
    """CPU seconds of this process's finished, waited-for children (e.g. wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU use over an interval of named process trees, of finished children ('wrk'), of this
    process ('bench') and of every other process on the machine ('others')."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._t0 = time.monotonic()
        self._start = tree_seconds(roots)
        self._children = children_seconds()
        self._own = own_seconds()
        self._machine = machine_seconds()

    def stop(self) -> CpuMeter:
        """Freeze the figures (call when the load ends)."""
        self.elapsed = max(time.monotonic() - self._t0, 1e-9)
        now = tree_seconds(self.roots)
        self.seconds = {name: now[name] - self._start[name] for name in self.roots}
        self.seconds["wrk"] = children_seconds() - self._children
        self.seconds["bench"] = own_seconds() - self._own
        ours = sum(self.seconds.values())
        self.seconds["others"] = max(0.0, machine_seconds() - self._machine - ours)
        return self

    def percent(self) -> dict[str, float]:
        """Per tree: % of one CPU while the meter ran."""
        if not hasattr(self, "seconds"):
            self.stop()
        return {name: 100.0 * s / self.elapsed for name, s in self.seconds.items()}

    def ms_per(self, name: str, count: int) -> float:
        """CPU milliseconds the named tree spent per request (or update)."""
        if not hasattr(self, "seconds"):
            self.stop()
        return 1000.0 * self.seconds[name] / max(count, 1)


def describe(percent: dict[str, float]) -> str:
    return ", ".join(f"{name} {p:.0f}%" for name, p in percent.items())
