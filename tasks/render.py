"""Render: turn a job's snapshot into its cached PNG, at most once per render interval."""

from __future__ import annotations

import time

from domain.model import chart_etag
from tasks import runtime
from tasks.celery_app import app


@app.task(name="tasks.render.render_job")
def render_job(tag: str) -> None:
    """Render a job's chart. Safe to repeat: an unchanged job is not drawn again."""
    settings, store = runtime.settings(), runtime.store()
    now = time.time()
    start = store.begin_render(tag, now)
    if start is None:
        return  # expired meanwhile
    snapshot = start.snapshot
    stale = sum(w.is_stale(now, settings.stale_after) for w in snapshot.workers)
    png, etag = None, ""
    if (start.chart_version, start.chart_stale) != (snapshot.version, stale):
        # Imported here so that the web process, which only sends renders, never loads matplotlib.
        from renderer.chart import render_png

        started = time.perf_counter()
        png = render_png(snapshot, now=now, stale_after=settings.stale_after)
        store.observe("render", time.perf_counter() - started)
        etag = chart_etag(snapshot.incarnation, snapshot.version, png)
    redraw_at = next_stale_time(snapshot, now, settings.stale_after)
    if store.finish_render(tag, snapshot, stale, etag, png, redraw_at):
        schedule_renders({tag: now})


def next_stale_time(snapshot, now: float, stale_after: float) -> float | None:
    """When the next running worker turns stale if it stays silent: the chart changes then."""
    times = [
        w.updated + stale_after
        for w in snapshot.workers
        if w.ok and w.current < w.total and not w.is_stale(now, stale_after)
    ]
    return min(times) + 0.5 if times else None


@app.task(name="tasks.render.heartbeat")
def render_heartbeat() -> None:
    """Sent by beat's sweep through the render queue, so /healthz knows renders flow."""
    runtime.store().heartbeat("render", time.time())


def schedule_renders(renders_due: dict[str, float]) -> None:
    """Send a render for each job, delayed so it starts no sooner than one render interval after
    the job's previous render started: coalescing, with the last update always drawn."""
    interval = runtime.settings().render_interval
    now = time.time()
    for tag, last_started in renders_due.items():
        delay = max(0.0, last_started + interval - now)
        render_job.apply_async((tag,), countdown=delay or None)
