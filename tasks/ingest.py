"""Ingest: apply accepted batches of worker updates to the store."""

from __future__ import annotations

import time

from tasks import runtime
from tasks.celery_app import app
from tasks.render import schedule_renders


@app.task(name="tasks.ingest.apply_batch")
def apply_batch(batch_id: str) -> int:
    """Apply one recorded batch. A batch already applied has no record left: nothing to do."""
    store = runtime.store()
    record = store.load_batch(batch_id)
    if record is None:
        return 0
    renders_due = store.apply_batch(batch_id, record, time.time())
    schedule_renders(renders_due)
    return len(record) // 4
