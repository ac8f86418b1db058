"""What the `progress` commands print: tables, JSON, messages on stderr, and the numbers and
worker texts in them made readable."""

from __future__ import annotations

import datetime
import json
import math
import shutil
import sys
from typing import Any


def summary(body: dict[str, Any], now: float) -> str:
    counts = body.get("counts") or {}
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("running", "done", "failed", "stale"))
    eta = body.get("eta_seconds")
    missing = not_reported(body)
    if missing:
        parts += f", {missing} not reported"
    line = f"overall {percent(body.get('percent')).strip()}: {parts}"
    line += f"; ETA {duration(eta)}" if isinstance(eta, (int, float)) else "; ETA unknown"
    last = body.get("last_update")
    if isinstance(last, (int, float)):
        line += f"; last update {duration(now - last)} ago"
    return line


def failure_text(failure: dict[str, Any]) -> str:
    """A job's failure as a whole, as the service records it, in one line."""
    by = failure.get("workid")
    who = f"worker {clean(str(by))!r}" if by is not None else "its launcher"
    reason = clean(str(failure.get("reason") or ""))
    return f"job failed as a whole, by {who}" + (f": {reason}" if reason else "")


def not_reported(body: dict[str, Any]) -> int | None:
    """How many expected workers have not reported yet; None for a job that expects no count
    (created without --workers)."""
    if not isinstance(body.get("workers_expected"), int):
        return None
    return _as_int(body.get("workers_silent"))


def print_table(headers: list[str], rows: list[list[str]], right: set) -> None:
    widths = [max(len(r[i]) for r in rows + [headers]) for i in range(len(headers))]
    if sys.stdout.isatty():  # keep one line per row: cut the last (free text) column
        room = shutil.get_terminal_size((100, 24)).columns - sum(w + 2 for w in widths[:-1])
        widths[-1] = max(min(widths[-1], room), len(headers[-1]))
    for row in [headers] + rows:
        cells = []
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                cell = cell[: max(widths[i] - 1, 0)] + "…"
            cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        print("  ".join(cells).rstrip())


def clean(value: Any) -> str:
    """Text from workers, made safe for a terminal: control characters shown escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def percent(value: Any) -> str:
    number = _as_float(value, None)
    return "    ?" if number is None else f"{number:5.1f}%"


def duration(seconds: Any) -> str:
    s = _as_float(seconds, None)
    if s is None:
        return "?"
    s = max(s, 0.0)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"


def ran(now: float, worker: dict) -> str:
    """How long a worker ran (status's duration), or has run so far, marked with a +."""
    took = _as_float(worker.get("duration"), None)
    if took is not None:
        return short_duration(took)
    started = _as_float(worker.get("started"), None)
    return "-" if started is None else short_duration(now - started) + "+"


def short_duration(seconds: float) -> str:
    """duration(), with tenths under 10 s: lifetimes are often that short."""
    return f"{max(seconds, 0.0):.1f}s" if seconds < 10 else duration(seconds)


def lifetimes_text(body: dict, now: float) -> str:
    """The lifetimes summary of `progress info`: median, slowest five, and the running workers
    that have already run longer than any finished one."""
    lt = body.get("lifetimes")
    if not isinstance(lt, dict) or not lt.get("finished"):
        return "lifetimes no worker has finished yet"
    slowest = ", ".join(
        f"{clean(w.get('workid', ''))} ({short_duration(_as_float(w.get('duration'), 0.0))})"
        for w in lt.get("slowest") or []
    )
    lines = [
        f"lifetimes {lt['finished']} finished, median "
        f"{short_duration(_as_float(lt.get('median_seconds'), 0.0))}; slowest: {slowest}"
    ]
    over = lt.get("overstaying_workers") or []
    if over:
        names = ", ".join(f"{clean(w.get('workid', ''))} ({ran(now, w)})" for w in over)
        more = _as_int(lt.get("overstaying")) - len(over)
        lines.append(
            f"          running longer than any finished worker: {names}"
            + (f" and {more} more" if more > 0 else "")
        )
    return "\n".join(lines)


def age(now: float, updated: Any) -> str:
    stamp = _as_float(updated, None)
    return "-" if stamp is None else duration(now - stamp)


def when(stamp: Any) -> str:
    value = _as_float(stamp, None)
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _as_float(value: Any, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value) if math.isfinite(value) else default


def print_json(body: Any) -> None:
    print(json.dumps(body, indent=2, ensure_ascii=False))


def note(text: str) -> None:
    print(text, file=sys.stderr)


def error(text: str) -> None:
    print(f"progress: error: {text}", file=sys.stderr)
