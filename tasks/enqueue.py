"""The web process's way into the pipeline: record accepted updates, send them to ingest, and
start renders. Nothing here waits for a worker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from tasks.ingest import apply_batch
from tasks.render import render_job
from tasks.settings import Settings
from tasks.store import StampClock, Store, Update, encode_row

ACCEPTED, UNKNOWN_JOB, TOO_MANY_WORKERS = 1, 0, 2


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A validated /progress/update request."""

    jobid: str
    workid: str
    current: float
    total: float
    ok: bool
    desc: str


class UpdateQueue:
    """Accepts batches of worker reports: durable in Redis before this returns, then queued."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._stamp = StampClock()

    def accept(self, reports: list[WorkerReport]) -> list[int]:
        """Per report ACCEPTED, UNKNOWN_JOB or TOO_MANY_WORKERS, in order.

        Stamps are taken here, in the order the reports arrived, so a later report always wins.
        If the publish fails after the record is stored, beat's sweep applies the record later:
        an update may then be applied although its sender saw a 503, never the reverse."""
        updates = [
            Update(r.jobid, r.workid, encode_row(self._stamp(), r.current, r.total, r.ok, r.desc))
            for r in reports
        ]
        batch_id = uuid.uuid4().hex
        statuses = self._store.accept_updates(
            batch_id, updates, time.time(), self._settings.max_workers_per_job
        )
        if ACCEPTED in statuses:
            apply_batch.apply_async((batch_id,))
        return statuses


def render_soon(tag: str) -> None:
    """Ask for a render now (create's first chart)."""
    render_job.apply_async((tag,))
