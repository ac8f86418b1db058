"""Beat's periodic work: expire old jobs, re-send work that a killed process left behind."""

from __future__ import annotations

import time

from tasks import runtime
from tasks.celery_app import app
from tasks.ingest import apply_batch, drain_task
from tasks.render import render_heartbeat, render_job


@app.task(name="tasks.maintenance.expire_jobs")
def expire_jobs() -> int:
    return runtime.store().expire_jobs(time.time())


@app.task(name="tasks.maintenance.resend_lost_work")
def resend_lost_work() -> dict[str, int]:
    """Batches claimed but not applied, and renders scheduled but not finished, for longer than
    redeliver_after were lost with a killed process (or a lost message): send them again. And
    if the inbox holds updates with no drain queued, queue one.
    Both tasks are idempotent, so a slow original finishing later does no harm. Also start the
    renders of jobs in which a worker has turned stale since their last chart."""
    settings, store = runtime.settings(), runtime.store()
    now = time.time()
    store.heartbeat("ingest", now)  # this task runs on the ingest queue: /healthz reads it
    render_heartbeat.delay()
    cutoff = now - settings.redeliver_after
    store.ensure_drain(now, drain_task())
    batches = store.claim_overdue_batches(cutoff, now)
    for batch_id in batches:
        apply_batch.delay(batch_id)
    renders = store.claim_overdue_renders(cutoff, now) + store.wake_redraws(now)
    for tag in renders:
        render_job.delay(tag)
    return {"batches": len(batches), "renders": len(renders)}
