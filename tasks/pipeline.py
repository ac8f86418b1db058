"""The update pipeline: every step an update takes from /progress/update to the PNG, and every
decision on the way, in one place.

  1. accept      web: `Pipeline.accept` runs tasks/lua/accept.lua, which checks the job, stamps
                 the update from Redis's clock and appends it to the inbox list; if it took
                 the drain flag, `ensure_drain` queues a drain before the web answers 202.
  2. drain       ingest: `Pipeline.drain` claims a batch from the inbox (tasks/lua/claim.lua
                 records it until applied) and, if more is waiting, queues the next drain.
  3. apply       ingest: `Store.apply_batch` runs tasks/lua/apply.lua on parts of the batch
                 (newest stamp wins); it keeps each job's summary and indexes, and a change
                 records a render as due, in the same script.
  4. render due  `request_render(tag, not_before)` sends the render task, at most one per
                 render interval per job (`render_not_before`).
  5. render      render: `Pipeline.render` reads a snapshot (tasks/lua/begin_render.lua), draws
                 it with the renderer, stores PNG and ETag (tasks/lua/finish_render.lua).
  6. chart       web: /progress/render reads the stored PNG (`Store.chart`).
Beat's `sweep` re-sends what a killed process left (claimed batches, renders due, a lost drain)
and wakes charts that change with time alone (stale workers); `expire` deletes old jobs (past
their maxage, or idle for PROGRESS_IDLE_EXPIRY: apply.lua moves a changed job's deadline), and
`delete_job` one job on request: updates still queued for a deleted job are dropped when applied
(its incarnation is gone, as for a re-created job), and a render under way stores nothing.
`fail_job` fails a job as a whole (tasks/lua/fail_job.lua): its chart is due, and its 'failed'
hook sent, at once; workers asking for it are told to skip their parts (the client's JobFailed).

Work is recorded in Redis by the same script that makes it due, and the message that asks a
worker to do it is sent after: a message lost with a killed process is re-sent by the sweep.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from domain.counters import Counter
from domain.model import (
    STATE_CODES,
    AcceptOutcome,
    CreateOutcome,
    DeleteOutcome,
    FailOutcome,
    JobFailure,
    WorkerColumns,
    WorkerState,
    chart_etag,
)
from tasks.broker import Broker
from tasks.identity import IdentityGuard, StoreIdentityChanged
from tasks.settings import Settings
from tasks.store import (
    COUNTERS_ONLY,
    AcceptLimits,
    AppliedBatch,
    FailedJob,
    Store,
    Update,
    encode_row,
    job_tag,
    with_counters,
)

INGEST_QUEUE = "ingest"
RENDER_QUEUE = "render"
NOTIFY_QUEUE = "notify"  # its own worker, so a slow receiver holds no renderer
# Tasks by name (tasks/ingest.py, render.py, maintenance.py, notify.py define them).
DRAIN = "tasks.ingest.drain"
APPLY_BATCH = "tasks.ingest.apply_batch"
RENDER = "tasks.render.render_job"
RENDER_HEARTBEAT = "tasks.render.heartbeat"
NOTIFY_HEARTBEAT = "tasks.notify.heartbeat"
NOTIFY = "tasks.notify.notify_finished"

BATCH_LIMIT = 5000
# A drain waits this long before it claims, so that under load a batch holds tens of updates
# rather than a handful: a task's fixed cost is paid per batch. Small next to the render interval.
GATHER_SECONDS = 0.01

STALE = STATE_CODES[WorkerState.STALE]
Draw = Callable[..., bytes]  # renderer.chart.render_png
T = TypeVar("T")


class ReplicasBehind(Exception):
    """Fewer replicas than PROGRESS_MIN_REPLICAS confirmed a write in time. The write stands on
    the master (and a retry of it is harmless: the newer state wins), but it is not yet safe
    from a failover."""

    def __init__(self, confirmed: int, needed: int, timeout: float) -> None:
        super().__init__(f"{confirmed} of {needed} replicas confirmed it within {timeout:g} s")
        self.confirmed, self.needed = confirmed, needed


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
    counters: tuple[Counter, ...] = ()
    progress: bool = True  # False: counters alone, the worker's row stays as it is


def stored_row(r: WorkerReport) -> str:
    """The row the accept script queues for a report (tasks.store.encode_row)."""
    row = encode_row(r.current, r.total, r.ok, r.desc) if r.progress else COUNTERS_ONLY
    return with_counters(row, r.counters) if r.counters else row


class Pipeline:
    def __init__(self, store: Store, broker: Broker, settings: Settings) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.identity = IdentityGuard(store)
        self._drain_ttl_ms = int(settings.redeliver_after * 1000)
        self._limits = AcceptLimits(
            settings.max_workers_per_job,
            settings.max_inbox,
            settings.max_worker_rows,
            settings.max_counters,
            settings.max_job_bytes,
            settings.max_worker_rows_per_address,
        )

    # -- 1. accept (web) ----------------------------------------------------------------------
    def accept(self, reports: list[WorkerReport], all_or_nothing: bool = False) -> list[int]:
        """Per report an AcceptOutcome value, in order, in one round trip. Accepted reports are in
        Redis with a drain on its way when this returns, stamped there in the order they
        arrive, so a later report always wins."""
        updates = [Update(r.jobid, r.workid, stored_row(r), r.secret) for r in reports]
        now = time.time()
        outcomes, drain_due = self._in_known_store(
            lambda identity: self.store.accept_updates(
                updates, now, self._limits, self._drain_ttl_ms, all_or_nothing, identity
            )
        )
        if drain_due:
            self.ensure_drain()
        self._replicated(AcceptOutcome.ACCEPTED in outcomes)
        return outcomes

    def create_job(
        self,
        jobid: str,
        desc: str,
        maxage: int,
        secret: str = "",
        notify: str = "",
        expected: int | None = None,
        meta: str = "",
        owner: str = "",
    ) -> tuple[CreateOutcome, float]:
        """(Re)create a job, owned by `owner` (the client's address: its quotas; '' for none):
        one script, no task. Its chart is a placeholder until the first update makes a render
        due. Returns the outcome and the time of creation."""
        now = time.time()
        incarnation = secrets.token_hex(8)
        outcome = self._in_known_store(
            lambda identity: self.store.create_job(
                jobid,
                desc,
                maxage,
                now,
                incarnation,
                secret,
                notify,
                self.settings.max_jobs,
                expected,
                identity,
                meta,
                owner,
                self.settings.max_jobs_per_address,
                self.settings.idle_expiry,
            )
        )
        self._replicated(outcome == CreateOutcome.CREATED)
        return outcome, now

    def delete_job(self, jobid: str, secret: str = "") -> DeleteOutcome:
        """Delete a job now: one script, no task (see the module's docstring for what becomes
        of its queued updates and of a render under way)."""
        outcome = self.store.delete_job(jobid, secret)
        self._replicated(outcome == DeleteOutcome.DELETED)
        return outcome

    def fail_job(self, jobid: str, failure: JobFailure, secret: str = "") -> FailedJob:
        """Fail a job as a whole: one script records it (the first failure stands), then its
        chart is requested and, once per incarnation, the 'failed' completion hook sent."""
        failed = self._in_known_store(
            lambda identity: self.store.fail_job(jobid, failure, secret, identity)
        )
        if failed.outcome == FailOutcome.FAILED:
            tag = job_tag(jobid)
            if failed.render_due_since is not None:
                self.request_render(tag, self.render_not_before(failed.render_due_since))
            if failed.notify:
                self.broker.send(NOTIFY, (tag, failed.hook, failed.notify), NOTIFY_QUEUE)
        self._replicated(failed.outcome == FailOutcome.FAILED)
        return failed

    def _in_known_store(self, write: Callable[[str], T]) -> T:
        """Run `write(identity)`, a script that writes only to the store this process knows
        (tasks/identity.py); if the store's identity changed, look again and retry once: a store
        that was reset is adopted, another store raises StoreMismatch."""
        try:
            return write(self.identity.expected_id(time.time()))
        except StoreIdentityChanged:
            return write(self.identity.check(time.time()).id)

    def _replicated(self, wrote: bool) -> None:
        """With PROGRESS_MIN_REPLICAS, return only once that many replicas have what this
        thread wrote, so a failover cannot lose it; ReplicasBehind if they do not in time."""
        needed = self.settings.min_replicas
        if not wrote or not needed:
            return
        confirmed = self.store.wait_for_replicas(needed, self.settings.min_replicas_timeout)
        if confirmed < needed:
            raise ReplicasBehind(confirmed, needed, self.settings.min_replicas_timeout)

    def ensure_drain(self) -> None:
        """Queue a drain. Called only by whoever took the drain flag, so at most one drain is
        queued at a time; the flag expires, so one lost here is queued again later."""
        self.broker.send(DRAIN, (), INGEST_QUEUE)

    # -- 2, 3. drain and apply (ingest) -------------------------------------------------------
    def drain(self) -> int:
        time.sleep(GATHER_SECONDS)
        batch_id = uuid.uuid4().hex
        entries, drain_due = self.store.claim_inbox(
            batch_id, time.time(), BATCH_LIMIT, self._drain_ttl_ms
        )
        if drain_due:
            self.ensure_drain()  # before applying, so other ingest processes start now
        if entries:
            self._after_apply(self._apply(batch_id, entries))
        return len(entries)

    def _apply(self, batch_id: str, entries: list[str]) -> AppliedBatch:
        return self.store.apply_batch(batch_id, entries, time.time(), self.settings.idle_expiry)

    def apply_lost_batch(self, batch_id: str) -> int:
        """Apply a claimed batch whose drain was lost with a killed worker (sent by the sweep).
        A batch already applied has no record left: nothing to do."""
        entries = self.store.load_batch(batch_id)
        if entries is None:
            return 0
        self._after_apply(self._apply(batch_id, entries))
        return len(entries)

    def _after_apply(self, applied: AppliedBatch) -> None:
        self.store.observe("apply", time.time() - applied.oldest_accepted)
        for tag, last_render_started in applied.renders_due.items():
            self.request_render(tag, self.render_not_before(last_render_started))
        for tag, state, url in applied.finished:
            if url:
                self.broker.send(NOTIFY, (tag, state, url), NOTIFY_QUEUE)

    # -- 4, 5. render due, render (render) ----------------------------------------------------
    def render_not_before(self, last_render_started: float) -> float:
        """A job is drawn at most once per render interval: coalescing, with the last update
        always drawn."""
        return last_render_started + self.settings.render_interval

    def request_render(self, tag: str, not_before: float) -> None:
        """Send the render of a job whose render the caller has recorded as due (renders due in
        Redis, written by the script that found it due), to start no sooner than not_before."""
        countdown = max(0.0, not_before - time.time())
        self.broker.send(RENDER, (tag,), RENDER_QUEUE, countdown)

    def render(self, tag: str, draw: Draw) -> None:
        """Draw a job's chart with `draw` and store it. Safe to repeat: an unchanged job is not
        drawn again."""
        stale_after = self.settings.stale_after
        now = time.time()
        start = self.store.begin_render(tag, now)
        if start is None:
            return  # expired meanwhile
        snapshot = start.snapshot
        bars = snapshot.bars()
        stale = int(np.count_nonzero(bars.states(now, stale_after) == STALE))
        png, etag = None, ""
        if (start.chart_version, start.chart_stale) != (snapshot.version, stale):
            started = time.perf_counter()
            png = draw(snapshot, now=now, stale_after=stale_after)
            self.store.observe("render", time.perf_counter() - started)
            etag = chart_etag(snapshot.incarnation, snapshot.version, png)
        redraw_at = next_stale_time(bars, now, stale_after)
        if self.store.finish_render(tag, snapshot, stale, etag, png, redraw_at):
            self.request_render(tag, self.render_not_before(now))  # changed while drawn

    # -- beat ---------------------------------------------------------------------------------
    def sweep(self) -> dict[str, int]:
        """Re-send work lost with a killed process or a lost message: batches claimed but not
        applied, and renders due but not finished, for longer than redeliver_after; a drain if
        the inbox holds updates and none is queued. Every task is idempotent, so a slow original
        finishing later does no harm. Also start the renders of jobs in which a worker has
        turned stale since their last chart, and make the workers check in for /readyz."""
        now = time.time()
        self.store.heartbeat("ingest", now)  # the sweep runs on the ingest queue
        self.broker.send(RENDER_HEARTBEAT, (), RENDER_QUEUE)
        if self.settings.notify_allowed:  # hooks off: no notify worker need run
            self.broker.send(NOTIFY_HEARTBEAT, (), NOTIFY_QUEUE)
        if self.store.take_drain_flag(now, self._drain_ttl_ms):
            self.ensure_drain()
        cutoff = now - self.settings.redeliver_after
        batches = self.store.claim_overdue_batches(cutoff, now)
        for batch_id in batches:
            self.broker.send(APPLY_BATCH, (batch_id,), INGEST_QUEUE)
        renders = self.store.claim_overdue_renders(cutoff, now) + self.store.wake_redraws(now)
        for tag in renders:
            self.request_render(tag, not_before=now)
        return {"batches": len(batches), "renders": len(renders)}

    def expire(self) -> int:
        return self.store.expire_jobs(time.time())


def next_stale_time(bars: WorkerColumns, now: float, stale_after: float) -> float | None:
    """When the next running worker turns stale if it stays silent: the chart changes then."""
    fresh = (bars.letters == b"r") & (now - bars.updated <= stale_after)
    if not fresh.any():
        return None
    return float(bars.updated[fresh].min()) + stale_after + 0.5
