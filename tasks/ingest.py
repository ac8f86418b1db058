"""Ingest: drain the inbox of accepted updates into the store.

The web process appends each accepted update to a Redis list and queues one `drain` task when
none is queued (tasks.store._ACCEPT), so a flood of requests costs one task per batch, not one
per update. A drain claims a batch, queues the next drain if more are waiting (so every ingest
process works in parallel), and applies its batch."""

from __future__ import annotations

import time
import uuid

from tasks import runtime
from tasks.celery_app import INGEST_QUEUE, app
from tasks.messages import task_message
from tasks.notify import notify_finished
from tasks.render import schedule_renders
from tasks.store import AppliedBatch, DrainTask

DRAIN = "tasks.ingest.drain"
BATCH_LIMIT = 5000
# A drain waits this long before it claims, so that under load a batch holds tens of updates
# rather than a handful: a task's fixed cost is paid per batch. Small next to the render interval.
GATHER_SECONDS = 0.01


def drain_task() -> DrainTask:
    return DrainTask(
        queue=INGEST_QUEUE,
        message=lambda: task_message(DRAIN, (), INGEST_QUEUE),
        ttl_ms=int(runtime.settings().redeliver_after * 1000),
    )


@app.task(name=DRAIN)
def drain() -> int:
    store = runtime.store()
    time.sleep(GATHER_SECONDS)
    batch_id = uuid.uuid4().hex
    entries = store.claim_inbox(batch_id, time.time(), BATCH_LIMIT, drain_task())
    if entries:
        after_apply(store.apply_batch(batch_id, entries, time.time()))
    return len(entries)


@app.task(name="tasks.ingest.apply_batch")
def apply_batch(batch_id: str) -> int:
    """Apply a claimed batch whose drain was lost with a killed worker (sent by beat's sweep).
    A batch already applied has no record left: nothing to do."""
    store = runtime.store()
    entries = store.load_batch(batch_id)
    if entries is None:
        return 0
    after_apply(store.apply_batch(batch_id, entries, time.time()))
    return len(entries)


def after_apply(applied: AppliedBatch) -> None:
    runtime.store().observe("apply", time.time() - applied.oldest_accepted)
    schedule_renders(applied.renders_due)
    for tag, state, url in applied.finished:
        if url:
            notify_finished.delay(tag, state, url)
