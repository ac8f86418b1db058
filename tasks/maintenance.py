"""Beat's periodic tasks: thin wrappers over the pipeline's expiry and sweep (tasks.pipeline)."""

from __future__ import annotations

from tasks import runtime
from tasks.celery_app import app


@app.task(name="tasks.maintenance.expire_jobs")
def expire_jobs() -> int:
    return runtime.pipeline().expire()


@app.task(name="tasks.maintenance.resend_lost_work")
def resend_lost_work() -> dict[str, int]:
    return runtime.pipeline().sweep()
