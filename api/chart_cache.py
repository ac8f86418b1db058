"""Charts recently read from Redis, kept in the web process for a fraction of the render
interval: a chart polled by many browsers costs one Redis read per job per `ttl`, not one per
request, and is at most `ttl` seconds staler than the cache in Redis. A job deleted or
re-created through this process is forgotten at once, so a client sees its own change on its
connection; other processes see it within `ttl`. A job without a chart yet (no update so far)
gets the placeholder, drawn here without matplotlib."""

from __future__ import annotations

import time

from renderer.placeholder import placeholder_png
from tasks.store import Chart, Store

MAX_ENTRIES = 1024


class ChartCache:
    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._charts: dict[str, tuple[float, Chart]] = {}

    def get(self, jobid: str) -> Chart | None:
        now = time.monotonic()
        hit = self._charts.get(jobid)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        chart = self.store.chart(jobid, with_png=True) or self._placeholder(jobid)
        if chart is not None:
            if len(self._charts) >= MAX_ENTRIES:
                self._charts.clear()
            self._charts[jobid] = (now, chart)
        return chart

    def forget(self, jobid: str) -> None:
        self._charts.pop(jobid, None)

    def _placeholder(self, jobid: str) -> Chart | None:
        title = self.store.job_title(jobid)
        if title is None:
            return None
        incarnation, desc = title
        return Chart(f"{incarnation}-placeholder", placeholder_png(jobid, desc))
