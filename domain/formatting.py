"""How numbers read, the same on the chart, the page and in messages."""

from __future__ import annotations

import math
import time


def percent_label(p: float) -> str:
    """A worker's or job's percent for people: never 100 % while it is unfinished."""
    if not math.isfinite(p):
        return "?"
    if 99.95 <= p < 100.0:
        return "99.9 %"
    return f"{p:.1f} %" if abs(p) < 1000 else f"{p:,.0f} %"


def duration_label(seconds: float) -> str:
    """A duration rounded to the unit a person would use: 45 s, 12 min, 5 h, 3 d."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def utc_time_label(t: float, now: float | None = None) -> str:
    """UTC time; without the date when `t` is on the same day as `now`, with the year when
    there is no `now`. Digits only: strftime's month and day names depend on the locale."""
    try:
        tm = time.gmtime(t)
        same_day = now is not None and time.gmtime(now)[:3] == tm[:3]
    except (OverflowError, OSError, ValueError):
        return "?"
    fmt = (
        "%H:%M UTC" if same_day else "%m-%d %H:%M UTC" if now is not None else "%Y-%m-%d %H:%M UTC"
    )
    return time.strftime(fmt, tm)
