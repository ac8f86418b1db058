"""How long a job's workers took: the lifetimes summary (tasks/lua/lifetimes.lua) and the
histogram of finished workers' durations the lifetimes chart draws (renderer/lifetimes.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SLOWEST = 5  # finished workers named as the slowest
OVERSTAYING_NAMED = 25  # running workers named of those running longer than any finished one
OVERSTAYING_TEXT = "running longer than any finished worker"


@dataclass(frozen=True, slots=True)
class Lifetime:
    """A finished worker: when it started and finished (the service's clock), and how long."""

    workid: str
    duration: float
    started: float | None = None
    finished: float | None = None


@dataclass(frozen=True, slots=True)
class Overstayer:
    """A running worker that has already run longer than any finished worker."""

    workid: str
    started: float


@dataclass(frozen=True)
class Lifetimes:
    now: float  # the service's clock when read
    finished: int  # workers done or failed whose start is known
    median: float | None
    slowest: tuple[Lifetime, ...]  # slowest first
    overstaying: int  # how many running workers have run longer than slowest[0]
    overstayers: tuple[Overstayer, ...]  # the first of them, longest running first

    @property
    def longest(self) -> float | None:
        return self.slowest[0].duration if self.slowest else None

    def as_dict(self) -> dict:
        """The status document's `lifetimes`."""
        return {
            "finished": self.finished,
            "median_seconds": self.median,
            "longest_seconds": self.longest,
            "slowest": [
                {
                    "workid": w.workid,
                    "started": w.started,
                    "finished": w.finished,
                    "duration": w.duration,
                }
                for w in self.slowest
            ],
            "overstaying": self.overstaying,
            "overstaying_workers": [
                {
                    "workid": w.workid,
                    "started": w.started,
                    "running_seconds": round(max(0.0, self.now - w.started), 6),
                }
                for w in self.overstayers
            ],
        }


def median(middle: list[float]) -> float | None:
    """The median from the middle value of a sorted list, or the two middle ones."""
    return sum(middle) / len(middle) if middle else None


@dataclass(frozen=True)
class Histogram:
    """Counts of durations in bins [edges[i], edges[i+1]), the last bin closed."""

    edges: tuple[float, ...]
    done: tuple[int, ...]
    failed: tuple[int, ...]


# Bin widths that read well as durations: 1, 2, 5 s ... 30 min, 1 h, 2 h ... then days.
_STEPS = (1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
          60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # fmt: skip
MAX_BINS = 24


def bin_width(span: float, bins: int = MAX_BINS) -> float:
    """The smallest readable width that covers `span` in at most `bins` bins."""
    for step in _STEPS:
        if span <= step * bins:
            return float(step)
    return 86400.0 * math.ceil(span / (86400 * bins))


def histogram(durations: Sequence[float], failed: Sequence[bool]) -> Histogram:
    """Bins of a readable width from just below the shortest duration to past the longest."""
    values, is_failed = np.asarray(durations, dtype=float), np.asarray(failed, dtype=bool)
    low, high = float(values.min()), float(values.max())
    width = bin_width(high - low)
    start = math.floor(low / width) * width
    bins = max(1, math.floor((high - start) / width) + 1)
    index = np.minimum(bins - 1, ((values - start) // width).astype(int))
    done = np.bincount(index[~is_failed], minlength=bins)
    fail = np.bincount(index[is_failed], minlength=bins)
    edges = tuple(start + i * width for i in range(bins + 1))
    return Histogram(edges, tuple(int(n) for n in done), tuple(int(n) for n in fail))


def lifetime_label(seconds: float) -> str:
    """A duration as precise as a lifetime needs: 0.23 s, 4.5 s, 42 s, 3 min 5 s, 2 h 10 min."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if seconds < 7200:
        return f"{minutes} min" + (f" {int(seconds % 60)} s" if minutes < 10 else "")
    if seconds < 172800:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{seconds / 86400:.0f} d"
