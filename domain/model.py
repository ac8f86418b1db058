"""Jobs and workers: the states a worker can be in, a job's immutable snapshot, its summary,
and what can become of an accepted update."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum

import numpy as np

from domain.counters import Counter

_DIGITS = re.compile(r"(\d+)")


class WorkerState(str, Enum):
    """What a worker is doing, as people see it. A str, so JSON and comparisons read plainly."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STALE = "stale"  # running, but silent longer than stale_after

    @property
    def colour(self) -> str:
        return STATE_COLOURS[self]


# The chart's bar colours; the page's text panel uses the same.
STATE_COLOURS = {
    WorkerState.RUNNING: "#4caf50",
    WorkerState.DONE: "#2e7d32",
    WorkerState.FAILED: "#d32f2f",
    WorkerState.STALE: "#9e9e9e",
}

# The one-letter state stored in a worker row, which the apply script counts without parsing
# JSON (tasks/lua/apply.lua). Stale is not stored: it depends on the time of reading.
STORED_LETTER = {WorkerState.RUNNING: "r", WorkerState.DONE: "d", WorkerState.FAILED: "f"}


class CreateOutcome(IntEnum):
    """What the create script answers (tasks/lua/create.lua)."""

    WRONG_SECRET = 0  # the job exists with a secret that was not presented
    CREATED = 1
    TOO_MANY_JOBS = 2  # the service holds as many jobs as it may
    OWNER_QUOTA = 3  # the creating address holds as many jobs as one address may


class DeleteOutcome(IntEnum):
    """What the delete script answers (tasks/lua/delete.lua)."""

    UNKNOWN_JOB = 0
    DELETED = 1
    WRONG_SECRET = 2


class FailOutcome(IntEnum):
    """What the fail script answers (tasks/lua/fail_job.lua)."""

    UNKNOWN_JOB = 0
    FAILED = 1  # this request failed the job
    WRONG_SECRET = 2
    ALREADY_FAILED = 3  # an earlier request did: its record stands


@dataclass(frozen=True, slots=True)
class JobFailure:
    """A job failed as a whole (/progress/fail): by one of its workers, or by its launcher.
    Every later worker of the job is told to skip its part."""

    by: str  # "worker" or "launcher"
    workid: str | None  # the worker's id when by == "worker"
    reason: str
    at: float  # Unix time the service recorded it

    def as_dict(self) -> dict:
        return {"by": self.by, "workid": self.workid, "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, text: str | bytes | None) -> JobFailure | None:
        """The record as the store keeps it (None: the job has not failed as a whole)."""
        if not text:
            return None
        fields = json.loads(text)
        return cls(fields["by"], fields.get("workid"), fields["reason"], float(fields["at"]))

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


class AcceptOutcome(IntEnum):
    """What the accept script answers for each update (tasks/lua/accept.lua)."""

    UNKNOWN_JOB = 0
    ACCEPTED = 1
    TOO_MANY_WORKERS = 2  # in this job
    WRONG_SECRET = 3
    BACKLOG = 4  # ingest is too far behind: try again later
    STORAGE_FULL = 5  # the service holds as many worker rows as it may
    TOO_MANY_COUNTERS = 6  # the worker would have more counters than it may
    JOB_TOO_LARGE = 7  # the job's rows would hold more bytes than a job may
    OWNER_QUOTA = 8  # the job's owner (its creating address) holds as many rows as it may


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker's latest reported state."""

    workid: str
    current: float
    total: float
    ok: bool
    desc: str
    updated: float  # Unix time the service accepted this state
    counters: tuple[Counter, ...] = ()  # in the order first posted (domain.counters)
    # Lifetime (tasks/lua/apply.lua): the service's time of its first update in this incarnation,
    # and of the update that turned it done or failed; None where not known or not yet.
    started: float | None = None
    finished: float | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.current / self.total

    @property
    def duration(self) -> float | None:
        """Seconds from started to finished (to the microsecond of the stamps); None until then."""
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 6)

    def is_stale(self, now: float, stale_after: float) -> bool:
        """Silent for too long while unfinished: the worker may have died without saying so."""
        return self.ok and self.current < self.total and now - self.updated > stale_after


# A state's position in WorkerState, the code WorkerColumns.states gives.
STATE_CODES = {state: code for code, state in enumerate(WorkerState)}
_LETTER_CODES = {letter.encode(): STATE_CODES[state] for state, letter in STORED_LETTER.items()}


@dataclass(frozen=True, slots=True)
class WorkerColumns:
    """Every worker of a job as the chart draws it, in natural order of their ids, as arrays
    rather than objects: a 100,000-worker job is read and drawn without 100,000 rows."""

    workids: Sequence[str]
    percent: np.ndarray  # 100 * current / total: may pass 100, nan when it cannot be told
    updated: np.ndarray  # Unix time each worker's state was accepted
    letters: np.ndarray  # STORED_LETTER of each (bytes: b"r", b"d", b"f")

    def __len__(self) -> int:
        return len(self.percent)

    def states(self, now: float, stale_after: float) -> np.ndarray:
        """Each worker's STATE_CODES code at time `now` (running workers silent for longer
        than stale_after are stale)."""
        codes = np.full(len(self), STATE_CODES[WorkerState.RUNNING], dtype=np.int8)
        for letter, code in _LETTER_CODES.items():
            codes[self.letters == letter] = code
        silent = (self.letters == b"r") & (now - self.updated > stale_after)
        codes[silent] = STATE_CODES[WorkerState.STALE]
        return codes

    @classmethod
    def of(cls, rows: Sequence[WorkerRow]) -> WorkerColumns:
        n = len(rows)
        current = np.fromiter((w.current for w in rows), dtype=float, count=n)
        total = np.fromiter((w.total for w in rows), dtype=float, count=n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            percent = 100.0 * current / total
        percent[~((total > 0) & np.isfinite(percent))] = np.nan
        letters = np.array(
            [STORED_LETTER[reported_state(w.ok, w.current, w.total)].encode() for w in rows],
            dtype="S1",
        )
        updated = np.fromiter((w.updated for w in rows), dtype=float, count=n)
        return cls([w.workid for w in rows], percent, updated, letters)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job and all its workers, workers in natural order of their ids. A large job read for
    its chart carries `columns` only, and its full rows only when it is small enough for the
    chart to print them (renderer.chart)."""

    jobid: str
    desc: str
    created: float
    maxage: int
    incarnation: str = ""
    version: int = 0
    workers: tuple[WorkerRow, ...] = field(default_factory=tuple)
    columns: WorkerColumns | None = None
    expected: int | None = None  # workers the job was created to expect (create's workers=)
    job_failed: JobFailure | None = None  # failed as a whole (/progress/fail)

    def bars(self) -> WorkerColumns:
        return self.columns if self.columns is not None else WorkerColumns.of(self.workers)


def natural_key(workid: str) -> tuple:
    """Sort key that puts 'node2' before 'node10' and '9' before '10'; ids equal but for
    leading zeros ('w7', 'w07') are ordered by the id itself."""
    return (
        tuple(
            (0, int(part), "") if part.isdecimal() else (1, 0, part)
            for part in _DIGITS.split(workid)
            if part
        ),
        workid,
    )


@functools.lru_cache(maxsize=1 << 16)  # ingest computes it for every update; workers repeat
def natural_bytes(workid: str) -> bytes:
    """natural_key as bytes that sort the same way, then NUL and the id: a member of a Redis
    sorted set read in natural order with ZRANGEBYLEX. A number is 0x01, its digit count in
    three digits and its digits; text is 0x02 and its UTF-8 (ids hold no byte below 0x20)."""
    parts = []
    for part in _DIGITS.split(workid):
        if not part:
            continue
        if part.isdecimal():
            digits = str(int(part))
            parts.append(b"\x01%03d%s" % (len(digits), digits.encode()))
        else:
            parts.append(b"\x02" + part.encode())
    return b"".join(parts) + b"\x00" + workid.encode()


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a person wants to know at a glance, derived from a snapshot at time `now`."""

    percent: float  # mean of the workers' percent, each clipped to 0..100 (see mean_percent)
    running: int
    done: int
    failed: int
    stale: int
    last_update: float | None
    eta_seconds: float | None
    silent: int = 0  # expected workers that have not reported yet

    @property
    def complete(self) -> bool:
        """Every worker done: at least one, none unfinished or failed, and none still silent."""
        return self.done > 0 and not (self.running or self.stale or self.failed or self.silent)


def silent_workers(expected: int | None, reported: int) -> int:
    """Expected workers not heard from yet: none when the job expects no number, or when more
    than expected have reported (the extra ones are counted as they are)."""
    return max(0, (expected or 0) - reported)


def mean_percent(percent_sum: float, expected: int | None, reported: int) -> float:
    """The overall percent: a silent worker counts 0 %, so the sum is shared among the expected
    workers, or among those that reported when they are more."""
    share = max(expected or 0, reported)
    return percent_sum / share if share else 0.0


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job without its workers: what status, the overview and the page's poll read."""

    jobid: str
    desc: str
    created: float
    maxage: int
    incarnation: str
    version: int
    workers: int  # how many have reported
    summary: JobSummary
    expected: int | None = None  # how many the job was created to expect (create's workers=)
    job_failed: JobFailure | None = None  # failed as a whole (/progress/fail)
    meta: dict | None = None  # what the launcher gave create's meta=, for the reduce step


def indexed_summary(
    *,
    workers: int,
    running: int,
    done: int,
    failed: int,
    stale: int,
    pct_sum: float,
    last_update: float | None,
    finish_at: float | None,
    now: float,
    expected: int | None = None,
) -> JobSummary:
    """The summary `summarize` would give, from the counts and sums the store keeps as updates
    are applied (tasks/lua/apply.lua): running counts every unfinished worker, stale ones too;
    pct_sum is the clipped percents of the workers not done; finish_at is when the slowest
    fresh running worker finishes at its rate so far (None when that is a guess, and while an
    expected worker is silent)."""
    fresh = running - stale
    silent = silent_workers(expected, workers)
    eta = None
    if fresh > 0 and finish_at is not None and not silent:
        eta = max(0.0, finish_at - now)
        if not math.isfinite(eta):
            eta = None
    percent = mean_percent(100.0 * done + pct_sum, expected, workers)
    return JobSummary(
        percent=min(100.0, max(0.0, percent)),
        running=fresh,
        done=done,
        failed=failed,
        stale=stale,
        last_update=last_update,
        eta_seconds=eta,
        silent=silent,
    )


_RUNNING_LETTER, _DONE_LETTER, _FAILED_LETTER = (
    STORED_LETTER[s] for s in (WorkerState.RUNNING, WorkerState.DONE, WorkerState.FAILED)
)


def stored_letter(ok: bool, current: float, total: float) -> str:
    """STORED_LETTER[reported_state(ok, current, total)], without the enum: this is on the
    path of every update."""
    if not ok:
        return _FAILED_LETTER
    return _DONE_LETTER if current >= total else _RUNNING_LETTER


def reported_state(ok: bool, current: float, total: float) -> WorkerState:
    """The state a report puts a worker in (stale comes only with time)."""
    if not ok:
        return WorkerState.FAILED
    return WorkerState.DONE if current >= total else WorkerState.RUNNING


def worker_state(row: WorkerRow, now: float, stale_after: float) -> WorkerState:
    if row.is_stale(now, stale_after):
        return WorkerState.STALE
    return reported_state(row.ok, row.current, row.total)


def chart_etag(incarnation: str, version: int, png: bytes) -> str:
    """A chart's ETag: it starts with the job's incarnation, so create can tell its own first
    chart from one of an earlier job of the same id."""
    return f"{incarnation}-{version}-{hashlib.blake2b(png, digest_size=6).hexdigest()}"


def summarize(snapshot: JobSnapshot, now: float, stale_after: float) -> JobSummary:
    """Counts, overall percent and an ETA.

    The ETA assumes each running worker keeps the mean rate it has shown since the job was
    created, and is the time the slowest of them needs to finish. It is None when it would be a
    guess: no running worker, one that has reported no progress yet, under 5 s of history, or
    an expected worker that has not reported yet."""
    silent = silent_workers(snapshot.expected, len(snapshot.workers))
    states = [worker_state(w, now, stale_after) for w in snapshot.workers]
    percents = [min(100.0, max(0.0, w.percent)) for w in snapshot.workers]
    eta: float | None = None
    running = [w for w, s in zip(snapshot.workers, states) if s is WorkerState.RUNNING]
    if (
        running
        and not silent
        and all(w.current > 0 and w.updated - snapshot.created >= 5 for w in running)
    ):
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
        percent=mean_percent(sum(percents), snapshot.expected, len(percents)),
        running=states.count(WorkerState.RUNNING),
        done=states.count(WorkerState.DONE),
        failed=states.count(WorkerState.FAILED),
        stale=states.count(WorkerState.STALE),
        last_update=max((w.updated for w in snapshot.workers), default=None),
        eta_seconds=eta,
        silent=silent,
    )
