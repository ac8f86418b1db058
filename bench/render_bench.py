"""Benchmark of the chart renderer: wall time of one ``render_png`` call and the PNG's size.

    .venv/bin/python -m bench.render_bench            # sizes 10, 100, 1000, 10000
    .venv/bin/python bench/render_bench.py 50 100000  # other sizes

Each size is rendered once to warm up (imports, font loading), then ``repeats`` times; the
median is reported. The snapshot is meant to look like a real job: progress that falls off
with the worker index (later workers started later), about 10 % done, 1 % failed and 3 %
stale, and a description on every worker.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.model import JobSnapshot, WorkerRow  # noqa: E402
from renderer.chart import render_png  # noqa: E402

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC
STALE_AFTER = 300.0
DEFAULT_SIZES = (10, 100, 1000, 10000)


def realistic_snapshot(n: int, *, seed: int = 0) -> JobSnapshot:
    """A job of *n* workers in mid-flight; deterministic for a given *seed*."""
    rng = random.Random(seed)
    workers = []
    for i in range(n):
        total = rng.choice((120, 250, 500, 1000, 2000))
        started_late = i / max(n, 1)
        fraction = min(1.0, max(0.0, 1.1 - 0.9 * started_late + rng.gauss(0.0, 0.12)))
        current = round(total * fraction)
        ok = True
        updated = NOW - rng.uniform(0.0, 60.0)
        roll = rng.random()
        if roll < 0.01:
            ok = False
        elif roll < 0.04 and current < total:
            updated = NOW - STALE_AFTER - rng.uniform(1.0, 3600.0)
        obs = 1_090_000_000 + 8 * i
        desc = (
            f"obs {obs}: {current}/{total} timesteps calibrated"
            if ok
            else f"obs {obs}: RuntimeError: visibility file truncated at {current}"
        )
        workers.append(WorkerRow(f"node{i + 1:05d}", current, total, ok, desc, updated))
    return JobSnapshot(
        jobid=f"bench-{n}",
        desc=f"Calibrate MWA observations, {n:,} workers",
        created=NOW - 7200.0,
        maxage=86400,
        incarnation="bench",
        version=1,
        workers=tuple(workers),
    )


def measure(sizes=DEFAULT_SIZES, repeats: int = 7) -> list[dict]:
    """Render a realistic snapshot of each size; median/min wall ms, CPU ms and PNG bytes."""
    results = []
    for n in sizes:
        snapshot = realistic_snapshot(n)
        png = render_png(snapshot, now=NOW, stale_after=STALE_AFTER)  # warm-up
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            png = render_png(snapshot, now=NOW, stale_after=STALE_AFTER)
            wall.append((time.perf_counter() - w0) * 1000.0)
            cpu.append((time.process_time() - c0) * 1000.0)
        results.append(
            {
                "workers": n,
                "ms": round(statistics.median(wall), 1),
                "ms_min": round(min(wall), 1),
                "cpu_ms": round(statistics.median(cpu), 1),
                "bytes": len(png),
                "repeats": repeats,
            }
        )
    return results


def main(argv: list[str]) -> None:
    sizes = tuple(int(a) for a in argv) or DEFAULT_SIZES
    print(f"{'workers':>8}  {'median ms':>9}  {'min ms':>7}  {'cpu ms':>7}  {'PNG bytes':>9}")
    for r in measure(sizes):
        print(
            f"{r['workers']:>8,}  {r['ms']:>9.1f}  {r['ms_min']:>7.1f}  {r['cpu_ms']:>7.1f}"
            f"  {r['bytes']:>9,}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
