"""The web process's way into the pipeline: accept updates into the inbox and start renders.
Nothing here waits for a worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tasks.ingest import drain_task
from tasks.render import render_job
from tasks.settings import Settings
from tasks.store import StampClock, Store, Update, encode_row


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A validated /progress/update request."""

    jobid: str
    workid: str
    current: float
    total: float
    ok: bool
    desc: str
    secret: str = ""


class UpdateQueue:
    """Accepts worker reports: durable in Redis, with an ingest task queued, before it returns."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._stamp = StampClock()
        self._drain = drain_task()

    def accept(self, reports: list[WorkerReport], all_or_nothing: bool = False) -> list[int]:
        """Per report an AcceptOutcome, in order, in one
        round trip. Stamps are taken here, in the order reports arrive, so a later report
        always wins."""
        updates = [
            Update(
                r.jobid,
                r.workid,
                encode_row(self._stamp(), r.current, r.total, r.ok, r.desc),
                r.secret,
            )
            for r in reports
        ]
        return self._store.accept_updates(
            updates, time.time(), self._settings.max_workers_per_job, self._drain, all_or_nothing
        )


def render_soon(tag: str) -> None:
    """Ask for a render now (create's first chart)."""
    render_job.apply_async((tag,))
