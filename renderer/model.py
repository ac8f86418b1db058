"""The renderer's input: an immutable snapshot of one job, as read from the store."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker's latest reported state."""

    workid: str
    current: float
    total: float
    ok: bool
    desc: str
    updated: float  # Unix time the service accepted this state

    @property
    def percent(self) -> float:
        return 100.0 * self.current / self.total

    def is_stale(self, now: float, stale_after: float) -> bool:
        """Silent for too long while unfinished: the worker may have died without saying so."""
        return self.ok and self.current < self.total and now - self.updated > stale_after


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job and all its workers, workers in natural order of their ids."""

    jobid: str
    desc: str
    created: float
    maxage: int
    incarnation: str = ""
    version: int = 0
    workers: tuple[WorkerRow, ...] = field(default_factory=tuple)


def natural_key(workid: str) -> tuple:
    """Sort key that puts 'node2' before 'node10' and '9' before '10'."""
    return tuple(
        (0, int(part), "") if part.isdecimal() else (1, 0, part)
        for part in _DIGITS.split(workid)
        if part
    )


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a person wants to know at a glance, derived from a snapshot at time `now`."""

    percent: float  # mean of the workers' percent, each clipped to 0..100
    running: int
    done: int
    failed: int
    stale: int
    last_update: float | None
    eta_seconds: float | None


def worker_state(row: WorkerRow, now: float, stale_after: float) -> str:
    if not row.ok:
        return "failed"
    if row.current >= row.total:
        return "done"
    return "stale" if row.is_stale(now, stale_after) else "running"


def summarize(snapshot: JobSnapshot, now: float, stale_after: float) -> JobSummary:
    """Counts, overall percent and an ETA.

    The ETA assumes each running worker keeps the mean rate it has shown since the job was
    created, and is the time the slowest of them needs to finish. It is None when it would be a
    guess: no running worker, one that has reported no progress yet, or under 5 s of history."""
    states = [worker_state(w, now, stale_after) for w in snapshot.workers]
    percents = [min(100.0, max(0.0, w.percent)) for w in snapshot.workers]
    eta: float | None = None
    running = [w for w, s in zip(snapshot.workers, states) if s == "running"]
    if running and all(w.current > 0 and w.updated - snapshot.created >= 5 for w in running):
        eta = max(
            0.0,
            max(
                (w.updated - snapshot.created) * (w.total - w.current) / w.current
                - (now - w.updated)
                for w in running
            ),
        )
    if eta is not None and not math.isfinite(eta):
        eta = None  # extreme numbers (5e-324 of 1e15): no estimate rather than Infinity
    return JobSummary(
        percent=sum(percents) / len(percents) if percents else 0.0,
        running=states.count("running"),
        done=states.count("done"),
        failed=states.count("failed"),
        stale=states.count("stale"),
        last_update=max((w.updated for w in snapshot.workers), default=None),
        eta_seconds=eta,
    )
