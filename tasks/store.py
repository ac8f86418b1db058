"""Every Redis key name and command of the service.

Layout (T is the job id, base64url-encoded, so no id can reach another job's keys, and every key
of a job shares the hash tag {T}):
  progress:{T}:meta      hash   jobid, desc, created, maxage, incarnation, version (bumped by
                                every change), rendered_at, updates (rows ingested), renders,
                                running, done, failed (worker counts), pct_sum, last_update,
                                finished, notify, secret, expected (workers, when given),
                                job_failed (JSON, when failed as a whole: tasks/lua/fail_job.lua),
                                job_meta (create's meta JSON, when given), owner (the
                                address that created it: its quotas), bytes (its rows'
                                ids and rows, in bytes: tasks/lua/accept.lua), queued_new,
                                queued_bytes (reserved for queued updates: pending below)
  progress:{T}:workers   hash   workid -> row (see encode_row)
  progress:{T}:chart     hash   png, etag, version, stale
  progress:{T}:order     zset   natural order of the workers, each with its packed bar (BAR)
  progress:{T}:failed    zset   failed workers -> time of update
  progress:{T}:active    zset   running workers -> time of update (the stale ones are oldest)
  progress:{T}:finish    zset   running workers -> projected finish time (the ETA)
  progress:{T}:blocked   zset   running workers with no ETA yet -> time of update
                                (the indexes are kept by tasks/lua/apply.lua, which says how)
  progress:{T}:lifetimes      hash  workid -> when it started and finished: 'S' or 'S F', stamps
  progress:{T}:durations      zset  done and failed workers -> how long they ran (F - S, s)
  progress:{T}:running_since  zset  running workers -> when they started (S, s)
                                (kept by apply.lua's track_lifetime, which says how)
  progress:{T}:counters       hash  workid -> the worker's counters, JSON (see with_counters;
                                merged per counter by apply.lua's merge_counters)
  progress:{T}:pending        hash  workid -> 'n,g': what accept.lua reserved for a worker's
                                updates queued, not applied yet (n 1 for a new worker, g bytes);
                                apply.lua releases it (meta queued_new, queued_bytes: the sums)
  progress:jobs:expiry   zset   T -> time after which the job is deleted
  progress:jobs:recent   zset   T -> creation time, for the overview
  progress:inbox         list   accepted updates not yet claimed by an ingest worker
  progress:stamp         string the last stamp given to an update (tasks/lua/accept.lua)
  progress:inbox:drain   string set while a drain task is queued or running (expires)
  progress:batches       hash   batch id -> updates claimed from the inbox, not yet applied
  progress:batches:due   zset   batch id -> time claimed
  progress:render:due    zset   T -> time a render was scheduled or started, until it finishes
  progress:render:later  zset   T -> time a running worker turns stale, so the chart must change
  progress:stats         hash   service-wide counters and latency histograms (see metrics)
  progress:owners        hash   jobs:<owner>, rows:<owner> -> the jobs and worker rows each owner
                                (creating address) holds, for its quotas; queued:<owner> -> its
                                new workers reserved, not applied yet (each gone at 0)
  progress:notify:key    string the completion hook's signing key when PROGRESS_NOTIFY_KEY is empty
  progress:store         hash   the store's identity: id, created; previous, reset_at after a
                                reset (tasks/identity.py)
The global keys make multi-job operations cheap; a Redis Cluster would need them split per slot.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from redis import Redis
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from domain.counters import Counter
from domain.lifetimes import Lifetime, Lifetimes, Overstayer, median
from domain.model import (
    CreateOutcome,
    DeleteOutcome,
    FailOutcome,
    JobFailure,
    JobInfo,
    JobSnapshot,
    WorkerColumns,
    WorkerRow,
    indexed_summary,
    natural_bytes,
    natural_key,
    stored_letter,
)
from tasks.identity import Identity, StoreIdentityChanged

EXPIRY = "progress:jobs:expiry"
RECENT = "progress:jobs:recent"
INBOX = "progress:inbox"
DRAIN_FLAG = "progress:inbox:drain"
BATCHES = "progress:batches"
BATCHES_DUE = "progress:batches:due"
RENDER_DUE = "progress:render:due"
RENDER_LATER = "progress:render:later"
STATS = "progress:stats"
OWNERS = "progress:owners"
LAST_STAMP = "progress:stamp"
NOTIFY_KEY = "progress:notify:key"
IDENTITY = "progress:store"
# A worker's packed bar (apply.lua): what the chart draws of it, in 13 bytes.
BAR = np.dtype([("percent", "<f4"), ("updated", "<f8"), ("state", "S1")])
# Jobs up to this many workers are read for their charts with their full rows: the chart
# prints each worker's id and description up to about this many (renderer.chart).
FULL_ROWS_MAX = 100
# Workers read by one call where a whole job is read (a chart, the lifetimes view): with ids of
# 256 characters at most, under about 2 MB and a few milliseconds of Redis's time.
READ_PIECE = 1000
# Updates applied by one script: a few milliseconds of Redis's time, so an apply never holds
# up the requests of the web processes for long (a 100,000-worker job costs more per update).
APPLY_PART = 250
ETA_PROBE = 64  # entries of a job's ETA index looked through for one not stale
FULL = 0.95  # of maxmemory: writes large enough to matter start to be refused
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAMP_DIGITS = 17  # microseconds since 1970, zero-padded, so rows compare as strings
STORE_CHANGED = "STORE_CHANGED"  # the error a script answers when the identity is not the one given


@functools.lru_cache(maxsize=4096)
def job_tag(jobid: str) -> str:
    return base64.urlsafe_b64encode(jobid.encode()).rstrip(b"=").decode()


def jobid_of(tag: str) -> str:
    return base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).decode()


def secret_digest(jobid: str, secret: str) -> str:
    """What is stored of a job's secret: a SHA-256 digest salted with the job id ("" for none).
    Unsalted-fast on purpose: it is checked on every update."""
    if not secret:
        return ""
    return hashlib.sha256(f"{job_tag(jobid)}\n{secret}".encode()).hexdigest()


def _keys(tag: str) -> tuple[str, str, str]:
    """A job's own keys: meta, workers, chart."""
    prefix = f"progress:{{{tag}}}"
    return f"{prefix}:meta", f"{prefix}:workers", f"{prefix}:chart"


_INDEXES = ("order", "failed", "active", "finish", "blocked")


def _counters_key(tag: str) -> str:
    """A job's counters: workid -> the JSON of its counters (see with_counters)."""
    return f"progress:{{{tag}}}:counters"


def _index_keys(tag: str) -> tuple[str, ...]:
    """A job's indexes, kept by apply.lua: order, failed, active, finish, blocked."""
    prefix = f"progress:{{{tag}}}"
    return tuple(f"{prefix}:{name}" for name in _INDEXES)


_LIFETIMES = ("lifetimes", "durations", "running_since")


def _lifetime_keys(tag: str) -> tuple[str, ...]:
    """A job's lifetime records, kept by apply.lua: lifetimes, durations, running_since."""
    prefix = f"progress:{{{tag}}}"
    return tuple(f"{prefix}:{name}" for name in _LIFETIMES)


def _all_keys(tag: str) -> list[str]:
    return [*_keys(tag), *_index_keys(tag), *_lifetime_keys(tag), _counters_key(tag)] + [
        _pending_key(tag)
    ]


def _pending_key(tag: str) -> str:
    """What accept.lua reserved for the job's queued updates (see the layout above)."""
    return f"progress:{{{tag}}}:pending"


def job_keys(jobid: str) -> list[str]:
    """Every key of a job (not its place in the global sets)."""
    return _all_keys(job_tag(jobid))


LUA_DIR = Path(__file__).with_name("lua")
_INCLUDE = re.compile(r'^--- @include "([\w-]+)"$', re.MULTILINE)


@functools.cache
def lua_source(name: str) -> str:
    """The script tasks/lua/<name>.lua with its `--- @include "x"` lines replaced by
    tasks/lua/includes/x.lua."""
    source = (LUA_DIR / f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda m: (LUA_DIR / "includes" / f"{m[1]}.lua").read_text(), source)


def encode_row(current: float, total: float, ok: bool, desc: str) -> str:
    """A worker row, less the stamp the accept script puts in front of it: a state letter
    (r running, d done, f failed) that the apply script counts without parsing JSON, then the
    values."""
    state = stored_letter(ok, current, total)
    # The JSON of [current, total, ok, desc], written out: the numbers are finite (validated), so
    # their repr is JSON, and json.dumps for the whole row would cost a third of an update.
    text = json.dumps(desc, ensure_ascii=False) if desc else '""'
    flag = "true" if ok else "false"
    return f"{state}[{float(current)!r},{float(total)!r},{flag},{text}]"


def decode_row(
    workid: str, row: str, lifetime: bytes | None = None, counters: bytes | None = None
) -> WorkerRow:
    """A worker row, with when it started and finished if its lifetime record is given, and
    its counters if they are."""
    current, total, ok, desc = json.loads(row[STAMP_DIGITS + 1 :])
    updated = int(row[:STAMP_DIGITS]) / 1e6
    started, _, finished = (lifetime or b"").decode().partition(" ")
    return WorkerRow(
        workid,
        current,
        total,
        ok,
        desc,
        updated,
        started=int(started) / 1e6 if started else None,
        finished=int(finished) / 1e6 if finished else None,
        counters=decode_counters(counters) if counters else (),
    )


# The row of an update of counters alone (apply.lua keeps the worker's row, stamped anew).
COUNTERS_ONLY = "c"


def with_counters(row: str, counters: Sequence[Counter]) -> str:
    """An update's row carrying counters after a line feed (a row's JSON holds none): each as
    [name, value as JSON text, colour], so that the apply script keeps numbers exact."""
    posted = [[c.name, json.dumps(c.value, ensure_ascii=False), c.colour] for c in counters]
    return row + "\n" + json.dumps(posted, ensure_ascii=False, separators=(",", ":"))


def decode_counters(stored: bytes) -> tuple[Counter, ...]:
    """A worker's counters as apply.lua stores them: [name, value as JSON text, colour, stamp]."""
    return tuple(Counter(n, json.loads(v), colour) for n, v, colour, _ in json.loads(stored))


@dataclass(frozen=True)
class Update:
    """One accepted worker state, ready for the queue."""

    jobid: str
    workid: str
    row: str  # encode_row(...), stamped when accepted
    secret: str = ""


@dataclass
class AppliedBatch:
    """What applying a batch changed that other tasks must act on."""

    oldest_accepted: float  # when the oldest update in it was accepted
    renders_due: dict[str, float] = field(default_factory=dict)  # tag -> last render start
    finished: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, state, notify)


@dataclass(frozen=True)
class FailedJob:
    """What failing a job as a whole did, and what the pipeline must send for it."""

    outcome: FailOutcome
    failure: JobFailure | None  # the one that stands (None: unknown job, wrong secret)
    hook: str  # 'failed' if the completion hook is due now, else ''
    notify: str  # the job's hook (domain.hooks.stored_hook) when the hook is due
    render_due_since: float | None  # when the last render started, if a render became due


@dataclass(frozen=True)
class AcceptLimits:
    workers_per_job: int
    inbox: int  # updates waiting to be applied
    worker_rows: int  # of all jobs together
    counters: int = 20  # names per worker (Settings.max_counters)
    job_bytes: int = 1 << 50  # ids and rows of one job's workers (Settings.max_job_bytes)
    rows_per_owner: int = 1 << 50  # (Settings.max_worker_rows_per_address)


@dataclass(frozen=True)
class RenderStart:
    snapshot: JobSnapshot
    chart_version: int | None
    chart_stale: int | None


@dataclass(frozen=True)
class Chart:
    etag: str
    png: bytes | None


class Store:
    """The service's state in Redis. Takes its connection; holds no other state."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._own = threading.local()
        script = functools.partial(_registered_script, redis)
        self._accept, self._claim, self._kick = script("accept"), script("claim"), script("kick")
        self._apply, self._create = script("apply"), script("create")
        self._begin_render, self._finish_render = script("begin_render"), script("finish_render")
        self._expire, self._wake = script("expire"), script("wake")
        self._claim_overdue, self._summary = script("claim_overdue"), script("summary")
        self._delete, self._identity = script("delete"), script("identity")
        self._fail_job = script("fail_job")
        self._lifetimes, self._durations_piece = script("lifetimes"), script("durations_piece")

    def _own_connection(self) -> Redis:
        """This thread's own connection, for the per-request calls: taking one from the pool
        costs a lock and a poll() per command, a fifth of an update's cost in the web process."""
        client = getattr(self._own, "client", None)
        if client is None:
            client = self._own.client = Redis(
                connection_pool=self.redis.connection_pool, single_connection_client=True
            )
        return client

    # -- jobs -------------------------------------------------------------------------------
    def create_job(
        self,
        jobid: str,
        desc: str,
        maxage: int,
        now: float,
        incarnation: str,
        secret: str = "",
        notify: str = "",
        max_jobs: int = 10**9,
        expected: int | None = None,
        identity: str = "",
        meta: str = "",
        owner: str = "",
        jobs_per_owner: int = 10**9,
        idle_expiry: int = 0,
    ) -> CreateOutcome:
        """(Re)create a job with no workers, expecting `expected` of them if given, in the store
        whose identity is `identity` if one is given (else StoreIdentityChanged), owned by
        `owner` (its quotas; '' for none). Updates queued for an earlier incarnation of the
        same id are dropped when applied."""
        tag = job_tag(jobid)
        expires_at = now + (min(maxage, idle_expiry) if idle_expiry else maxage)
        outcome = self._guarded(
            self._create,
            keys=[*_keys(tag), EXPIRY, RECENT, RENDER_DUE, STATS, IDENTITY, OWNERS]
            + [*_index_keys(tag), *_lifetime_keys(tag), _counters_key(tag), _pending_key(tag)],
            args=[
                identity,
                tag,
                jobid,
                desc,
                repr(now),
                maxage,
                incarnation,
                repr(expires_at),
                secret_digest(jobid, secret),
                notify,
                max_jobs,
                "" if expected is None else expected,
                meta,
                owner,
                jobs_per_owner,
            ],
        )
        return CreateOutcome(outcome)

    def fail_job(
        self, jobid: str, failure: JobFailure, secret: str = "", identity: str = ""
    ) -> FailedJob:
        """Fail a job as a whole, if `secret` is its secret (or it has none) and no earlier
        failure stands (tasks/lua/fail_job.lua), in the store whose identity is `identity`."""
        tag = job_tag(jobid)
        meta = _keys(tag)[0]
        outcome, standing, hook, notify, render_due, rendered_at = self._guarded(
            self._fail_job,
            keys=[meta, RENDER_DUE, IDENTITY],
            args=[identity, tag, secret_digest(jobid, secret), failure.to_json(), failure.at],
        )
        return FailedJob(
            FailOutcome(outcome),
            JobFailure.from_json(standing),
            hook.decode() if isinstance(hook, bytes) else hook,
            notify.decode() if isinstance(notify, bytes) else notify,
            float(rendered_at) if render_due else None,
        )

    def _guarded(self, script, keys: list, args: list):
        """Run a script that checks the store's identity first, on this thread's connection
        (the one a following WAIT covers)."""
        try:
            return script(keys=keys, args=args, client=self._own_connection())
        except ResponseError as exc:
            if str(exc).startswith(STORE_CHANGED):
                raise StoreIdentityChanged() from None
            raise

    def delete_job(self, jobid: str, secret: str = "") -> DeleteOutcome:
        """Delete a job and every key of it at once, if `secret` is its secret (or it has
        none). Its queued updates are dropped when applied, as for a re-created job."""
        tag = job_tag(jobid)
        meta, workers, _ = _keys(tag)
        global_sets = [EXPIRY, RECENT, RENDER_DUE, RENDER_LATER]
        outcome = self._delete(
            keys=[STATS, meta, workers, *global_sets, *_all_keys(tag), OWNERS],
            args=[tag, secret_digest(jobid, secret), len(global_sets)],
            client=self._own_connection(),
        )
        return DeleteOutcome(outcome)

    def snapshot(self, jobid: str) -> JobSnapshot | None:
        tag = job_tag(jobid)
        meta_key, workers_key, _ = _keys(tag)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta_key).hgetall(workers_key).hgetall(_counters_key(tag))
            meta, workers, counters = pipe.execute()
        return _snapshot(meta, workers, counters=counters) if meta else None

    def chart(self, jobid: str, with_png: bool) -> Chart | None:
        _, _, chart_key = _keys(job_tag(jobid))
        redis = self._own_connection()
        if with_png:
            etag, png = redis.hmget(chart_key, "etag", "png")
        else:
            etag, png = redis.hget(chart_key, "etag"), None
        return Chart(etag.decode(), png) if etag else None

    def job_title(self, jobid: str) -> tuple[str, str] | None:
        """A job's incarnation and description, or None if there is no such job."""
        incarnation, desc = self._own_connection().hmget(
            _keys(job_tag(jobid))[0], "incarnation", "desc"
        )
        return None if incarnation is None else (incarnation.decode(), desc.decode())

    def job_exists(self, jobid: str) -> bool:
        return bool(self.redis.exists(_keys(job_tag(jobid))[0]))

    def recent_jobs(
        self, offset: int, limit: int, now: float, stale_after: float
    ) -> tuple[int, list[JobInfo]]:
        """The newest jobs first, from `offset`, with their summaries; and how many there are."""
        with self.redis.pipeline(transaction=False) as pipe:
            total, tags = pipe.zcard(RECENT).zrevrange(RECENT, offset, offset + limit - 1).execute()
        infos = self.job_infos([t.decode() for t in tags], now, stale_after)
        return total, [info for info in infos if info is not None]

    def job_infos(self, tags: list[str], now: float, stale_after: float) -> list[JobInfo | None]:
        """Jobs and their summaries, without reading their workers (tasks/lua/summary.lua),
        in one round trip; None for a job that does not exist."""
        with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                meta, workers, _ = _keys(tag)
                _, _, active, finish, blocked = _index_keys(tag)
                self._summary(
                    keys=[meta, workers, active, finish, blocked],
                    args=[repr(now), stale_after, ETA_PROBE],
                    client=pipe,
                )
            replies = pipe.execute()
        return [_job_info(reply, now) if reply else None for reply in replies]

    def job_info(self, jobid: str, now: float, stale_after: float) -> JobInfo | None:
        return self.job_infos([job_tag(jobid)], now, stale_after)[0]

    def worker_page(
        self, jobid: str, after: str | None, limit: int
    ) -> tuple[list[WorkerRow], str | None]:
        """Up to `limit` workers in natural order of their ids, from the one after `after`
        (from the first with None); and the id to continue after, if more follow."""
        tag = job_tag(jobid)
        start = _after(natural_bytes(after)) if after is not None else b"-"
        members = self.redis.zrangebylex(_index_keys(tag)[0], start, b"+", 0, limit + 1)
        workids = [_workid(m) for m in members[:limit]]
        rows = self._rows(tag, workids)
        more = len(members) > limit and rows
        return rows, rows[-1].workid if more else None

    # -- lifetimes (apply.lua's track_lifetime keeps them) -------------------------------------
    def lifetimes(self, jobid: str, slowest: int, named: int) -> Lifetimes:
        """How long the job's finished workers took, the `slowest` of them, and up to `named` of
        the running workers that have already run longer than any finished one."""
        lifetimes, durations, running_since = _lifetime_keys(job_tag(jobid))
        now, finished, middle, top, overstaying, overstayers = self._lifetimes(
            keys=[durations, running_since, lifetimes], args=[slowest, named]
        )
        return Lifetimes(
            now=float(now),
            finished=finished,
            median=median([float(x) for x in middle]),
            slowest=tuple(_lifetime(w.decode(), float(d), record) for w, d, record in top),
            overstaying=overstaying,
            overstayers=tuple(Overstayer(w.decode(), float(t)) for w, t in overstayers),
        )

    def finished_durations(self, jobid: str) -> tuple[str, list[tuple[str, float, bool]]] | None:
        """The job's description, and every finished worker's (workid, duration, failed),
        shortest first; None for no such job. Read READ_PIECE workers per call
        (tasks/lua/durations_piece.lua): the pieces are not one snapshot, so a worker finishing
        meanwhile may be read twice (it is kept once) and one starting again may be missed; the
        view is drawn anew on each request, from what it read (its ETag says which)."""
        tag = job_tag(jobid)
        failed_key, durations_key = _index_keys(tag)[1], _lifetime_keys(tag)[1]
        desc = self.redis.hget(_keys(tag)[0], "desc")
        if desc is None:
            return None
        finished: dict[bytes, tuple[float, bool]] = {}
        for start in itertools.count(0, READ_PIECE):
            piece = self._durations_piece(
                keys=[durations_key, failed_key], args=[start, start + READ_PIECE - 1]
            )
            for i in range(0, len(piece), 3):
                finished[piece[i]] = (float(piece[i + 1]), bool(piece[i + 2]))
            if len(piece) < 3 * READ_PIECE:
                break
        # Redis's order (duration, then id), also for a worker that moved between pieces
        ordered = sorted(finished.items(), key=lambda item: (item[1][0], item[0]))
        return desc.decode(), [(w.decode(), d, failed) for w, (d, failed) in ordered]

    def problems(
        self, jobid: str, now: float, stale_after: float, limit: int
    ) -> tuple[list[WorkerRow], list[WorkerRow]]:
        """Up to `limit` failed workers (the latest failures) and up to `limit` stale ones (the
        longest silent), found through the indexes, not by reading every worker."""
        tag = job_tag(jobid)
        _, failed, active, _, _ = _index_keys(tag)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(failed, 0, limit - 1)
            pipe.zrangebyscore(active, "-inf", f"({now - stale_after!r}", 0, limit)
            failed_ids, stale_ids = pipe.execute()
        return self._rows(tag, failed_ids), self._rows(tag, stale_ids)

    def _rows(self, tag: str, workids: list[bytes]) -> list[WorkerRow]:
        if not workids:
            return []
        # Not MULTI: a full Redis refuses to queue commands, and reads must go on then.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(_keys(tag)[1], workids).hmget(_lifetime_keys(tag)[0], workids)
            pipe.hmget(_counters_key(tag), workids)
            rows, lifetimes, counters = pipe.execute()
        return [
            decode_row(w.decode(), r.decode(), lifetime, c)
            for w, r, lifetime, c in zip(workids, rows, lifetimes, counters)
            if r is not None
        ]

    # -- the update path ---------------------------------------------------------------------
    def accept_updates(
        self,
        updates: list[Update],
        now: float,
        limits: AcceptLimits,
        drain_ttl_ms: int,
        all_or_nothing: bool = False,
        identity: str = "",
    ) -> tuple[list[int], bool]:
        """Append updates to the inbox, durably, in the store whose identity is `identity` (else
        StoreIdentityChanged). Returns per update an AcceptOutcome, and whether a drain must be
        queued now (this call took the drain flag)."""
        keys: list[str] = [INBOX, DRAIN_FLAG, LAST_STAMP, STATS, IDENTITY, OWNERS]
        job_index: dict[str, int] = {}
        args: list = [repr(now), limits.workers_per_job, drain_ttl_ms, int(all_or_nothing)]
        args += [limits.inbox, limits.worker_rows, identity, limits.counters]
        args += [limits.job_bytes, limits.rows_per_owner]
        for u in updates:
            tag = job_tag(u.jobid)
            if tag not in job_index:
                job_index[tag] = len(job_index) + 1
                keys += [*_keys(tag)[:2], _counters_key(tag), _pending_key(tag)]
            args += [job_index[tag], tag, u.workid, u.row, secret_digest(u.jobid, u.secret)]
        *outcomes, drain_due = self._guarded(self._accept, keys, args)
        return outcomes, bool(drain_due)

    def wait_for_replicas(self, replicas: int, timeout: float) -> int:
        """Block until `replicas` replicas have every write this thread made (Redis WAIT), for
        at most `timeout` seconds. Returns how many have them."""
        return int(self._own_connection().execute_command("WAIT", replicas, int(timeout * 1000)))

    def identity(self, new_id: str, now: float, previous: str) -> Identity:
        """The store's identity; if it has none, it is given `new_id`, recording the reset of
        `previous` if that is not ''. Reads first, so that a read-only replica answers too."""
        fields = self.redis.hgetall(IDENTITY)
        if not fields:
            fields = _pairs(self._identity(keys=[IDENTITY], args=[new_id, repr(now), previous]))
        return _identity(fields)

    def claim_inbox(
        self, batch_id: str, now: float, limit: int, drain_ttl_ms: int
    ) -> tuple[list[str], bool]:
        """Move up to `limit` inbox entries into the batch record `batch_id`. Returns them, and
        whether a drain must be queued now for the entries left waiting."""
        drain_due, *entries = self._claim(
            keys=[INBOX, DRAIN_FLAG, BATCHES, BATCHES_DUE],
            args=[batch_id, repr(now), limit, drain_ttl_ms],
        )
        return [e.decode() for e in entries], bool(drain_due)

    def take_drain_flag(self, now: float, drain_ttl_ms: int) -> bool:
        """Whether a drain must be queued: the inbox holds entries and none is queued."""
        return bool(self._kick(keys=[INBOX, DRAIN_FLAG], args=[repr(now), drain_ttl_ms]))

    def load_batch(self, batch_id: str) -> list[str] | None:
        record = self.redis.hget(BATCHES, batch_id)
        return json.loads(record) if record else None

    def apply_batch(
        self, batch_id: str, entries: list[str], now: float, idle_expiry: int = 0
    ) -> AppliedBatch:
        """Apply a claimed batch and clear its record; a job changed by it is not expired before
        `idle_expiry` seconds from now (0: only its maxage counts). Safe to repeat: a row only
        replaces an older one. Applied in parts of APPLY_PART updates, one script each, so that
        no script holds Redis for long; the last part clears the record in the same atomic step,
        so the record outlives any part that failed."""
        per_job: dict[tuple[str, str], list] = defaultdict(list)
        oldest = None
        for entry in entries:
            tag, incarnation, workid, row = entry.split("\n", 3)
            row, _, counters = row.partition("\n")  # see with_counters
            per_job[(tag, incarnation)].append((workid, row, natural_bytes(workid), counters))
            stamp = row[:STAMP_DIGITS]
            oldest = stamp if oldest is None or stamp < oldest else oldest
        applied = AppliedBatch(oldest_accepted=int(oldest) / 1e6)
        parts = list(_parts(per_job, APPLY_PART))
        for n, part in enumerate(parts, start=1):
            keys: list[str] = [BATCHES, BATCHES_DUE, RENDER_DUE, STATS, OWNERS, EXPIRY]
            args: list = [batch_id, repr(now), int(n == len(parts)), idle_expiry]
            for (tag, incarnation), updates in part:
                keys += [*_keys(tag)[:2], *_index_keys(tag), *_lifetime_keys(tag)]
                keys += [_counters_key(tag), _pending_key(tag)]
                args += [tag, incarnation, len(updates), *(x for u in updates for x in u[:3])]
                counted = [(w, row[:STAMP_DIGITS], c) for w, row, _, c in updates if c]
                args += [len(counted), *(x for c in counted for x in c)]
            results = self._apply(keys=keys, args=args)
            for ((tag, _), _), (_, scheduled, rendered_at, finished, notify) in zip(part, results):
                if scheduled:
                    applied.renders_due[tag] = float(rendered_at)
                if finished:
                    applied.finished.append((tag, finished.decode(), notify.decode()))
        return applied

    # -- rendering ---------------------------------------------------------------------------
    def begin_render(self, tag: str, now: float) -> RenderStart | None:
        """Take the job's render lease and read what its chart needs: every worker's packed
        bar in natural order (WorkerColumns), and full rows only for a small job.

        A small job is read in the one script that takes the lease. A larger one's order index
        is read after it in pieces of READ_PIECE members (_order_members), each its own call,
        so that no call's time grows with the job and other clients' calls run between them.
        The pieces are not one snapshot, yet the chart stays right: every worker is read once
        (the cursor is its natural key, which an update does not change), in a state no older
        than the version read here; the chart is stored as of that version, and finish_render
        sends another render if the version has moved on by then. So a chart may show a few
        updates early, never one late, and the last one is always drawn."""
        meta_key, workers_key, chart_key = _keys(tag)
        order = _index_keys(tag)[0]
        reply = self._begin_render(
            keys=[meta_key, workers_key, chart_key, RENDER_DUE, order, _counters_key(tag)],
            args=[tag, repr(now), FULL_ROWS_MAX],
        )
        if not reply:
            return None
        meta, (version, stale), count, members, rows, counters = reply
        if count > FULL_ROWS_MAX:
            members = self._order_members(order)
        workids = _WorkIds(members)
        bar = np.frombuffer(b"".join([m[-BAR.itemsize :] for m in members]), dtype=BAR)
        columns = WorkerColumns(workids, bar["percent"].astype(float), bar["updated"], bar["state"])
        full = tuple(
            decode_row(workids[i], row.decode(), counters=counters[i])
            for i, row in enumerate(rows)
            if row
        )
        return RenderStart(
            _snapshot(_pairs(meta), {}, columns=columns, rows=full),
            int(version) if version is not None else None,
            int(stale) if stale is not None else None,
        )

    def _order_members(self, order: str) -> list[bytes]:
        """Every member of a job's order index, in natural order, read READ_PIECE at a time
        (separate calls, not one pipeline: Redis runs a pipeline's commands back to back)."""
        members: list[bytes] = []
        start = b"-"
        while True:
            piece = self.redis.zrangebylex(order, start, b"+", 0, READ_PIECE)
            members += piece
            if len(piece) < READ_PIECE:
                return members
            start = _after_member(piece[-1])

    def finish_render(
        self,
        tag: str,
        snapshot: JobSnapshot,
        stale: int,
        etag: str,
        png: bytes | None,
        redraw_at: float | None,
    ) -> bool:
        """Store the chart drawn from `snapshot` (None: the stored one is still right), and when
        to draw it again although nothing was reported (a worker turning stale).
        True if the job changed while it was drawn, so another render is due."""
        meta_key, _, chart_key = _keys(tag)
        outcome = self._finish_render(
            keys=[meta_key, chart_key, RENDER_DUE, RENDER_LATER],
            args=[
                snapshot.incarnation,
                snapshot.version,
                etag,
                stale,
                png or b"",
                tag,
                "" if redraw_at is None else repr(redraw_at),
            ],
        )
        return outcome == 2

    # -- maintenance -------------------------------------------------------------------------
    def expire_jobs(self, now: float) -> int:
        """Delete every job whose maxage has passed, with all its keys."""
        deleted = 0
        for tag in self.redis.zrangebyscore(EXPIRY, "-inf", now):
            deleted += self._expire_job(tag.decode(), now)
        return deleted

    def _expire_job(self, tag: str, now: float) -> int:
        return self._expire(
            keys=[STATS, _keys(tag)[1], EXPIRY, RECENT, RENDER_DUE, RENDER_LATER]
            + [*_all_keys(tag), OWNERS],
            args=[tag, repr(now), 3],
        )

    def remove_job(self, tag: str) -> bool:
        """Delete a job whatever its secret, as expiry does (the operator's tasks.admin)."""
        if self.redis.zscore(EXPIRY, tag) is None:
            return False
        self.redis.zadd(EXPIRY, {tag: 0}, xx=True)
        return bool(self._expire_job(tag, 0.0))

    def jobs_page(self, cursor: int, count: int) -> tuple[int, list[tuple[str, str]]]:
        """One bounded step through every job (ZSCAN of the expiry set): the next cursor (0 at
        the end), and (tag, owner) of the jobs in this step."""
        cursor, members = self.redis.zscan(EXPIRY, cursor, count=count)
        tags = [m.decode() for m, _ in members]
        with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.hget(_keys(tag)[0], "owner")
            owners = pipe.execute()
        return cursor, [(t, (o or b"").decode()) for t, o in zip(tags, owners)]

    def claim_overdue_batches(self, accepted_before: float, now: float) -> list[str]:
        """Batches accepted before the cutoff and still not applied."""
        return self._claim_due(BATCHES_DUE, accepted_before, now)

    def claim_overdue_renders(self, scheduled_before: float, now: float) -> list[str]:
        """Jobs whose render was scheduled or started before the cutoff and never finished."""
        return self._claim_due(RENDER_DUE, scheduled_before, now)

    def wake_redraws(self, now: float, limit: int = 10_000) -> list[str]:
        """Jobs to draw again because time alone changed them; each is now due a render."""
        return [
            t.decode() for t in self._wake(keys=[RENDER_LATER, RENDER_DUE], args=[repr(now), limit])
        ]

    # -- operations --------------------------------------------------------------------------
    def observe(self, name: str, seconds: float) -> None:
        """Count a duration into the histogram `name` (buckets LATENCY_BUCKETS)."""
        bucket = next((b for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(STATS, f"{name}:le:{bucket}", 1)
            pipe.hincrby(STATS, f"{name}:count", 1)
            pipe.hincrbyfloat(STATS, f"{name}:sum", seconds)
            pipe.execute()

    def add_counts(self, counts: dict[str, int]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for name, n in counts.items():
                pipe.hincrby(STATS, name, n)
            pipe.execute()

    def memory(self) -> tuple[int, int]:
        """Bytes Redis uses, and its maxmemory (0: no limit)."""
        memory = self.redis.info("memory")
        return memory.get("used_memory", 0), memory.get("maxmemory", 0)

    def write_refusal(self, now: float) -> str | None:
        """Why Redis refuses writes now, or is about to (None: it takes them)."""
        try:
            self.redis.hset(STATS, "write_probe", repr(now))
        except ResponseError as exc:
            reason = write_refusal(exc)
            if reason is None:
                raise
            return reason
        used, limit = self.memory()
        if limit and used >= FULL * limit:
            return f"Redis is nearly out of memory ({used / limit:.0%} of maxmemory)"
        return None

    def notify_key(self, candidate: str) -> str:
        """The hook's signing key shared by every notify worker: the stored one, or `candidate`
        stored if there is none yet (whoever stores first wins; the others read it)."""
        with self.redis.pipeline(transaction=True) as pipe:
            _, stored = pipe.set(NOTIFY_KEY, candidate, nx=True).get(NOTIFY_KEY).execute()
        return stored.decode()

    def heartbeat(self, role: str, now: float) -> None:
        self.redis.hset(STATS, f"heartbeat:{role}", repr(now))

    def operational_stats(self, queues: list[str]) -> dict[str, float]:
        """Service-wide counters, histogram fields, heartbeats, and queue depths by name."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(STATS).zcard(EXPIRY).llen(INBOX).zcard(BATCHES_DUE).zcard(RENDER_DUE)
            for queue in queues:
                pipe.llen(queue)
            stats, jobs, inbox, claimed, renders, *depths = pipe.execute()
        values = {k.decode(): float(v) for k, v in stats.items()}
        values.update({"jobs": jobs, "queue:inbox": inbox, "queue:claimed_batches": claimed})
        values["queue:renders_due"] = renders
        values.update({f"queue:{q}": d for q, d in zip(queues, depths)})
        return values

    def pending_updates(self) -> int:
        """Accepted updates not yet applied: in the inbox, or claimed by a batch (counted as 1)."""
        with self.redis.pipeline(transaction=False) as pipe:
            inbox, batches = pipe.llen(INBOX).zcard(BATCHES_DUE).execute()
        return inbox + batches

    def _claim_due(self, key: str, before: float, now: float, limit: int = 10_000) -> list[str]:
        members = self._claim_overdue(keys=[key], args=[repr(before), repr(now), limit])
        return [m.decode() for m in members]


def _pairs(flat: list) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2]))


def _identity(fields: dict[bytes, bytes]) -> Identity:
    reset_at = fields.get(b"reset_at")
    return Identity(
        id=fields[b"id"].decode(),
        created=float(fields[b"created"]),
        previous=fields.get(b"previous", b"").decode(),
        reset_at=float(reset_at) if reset_at else None,
    )


def _lifetime(workid: str, duration: float, record: bytes) -> Lifetime:
    started, _, finished = record.decode().partition(" ")
    return Lifetime(
        workid,
        round(duration, 6),
        started=int(started) / 1e6 if started else None,
        finished=int(finished) / 1e6 if finished else None,
    )


def _job_info(reply: list, now: float) -> JobInfo:
    values, workers, stale, _fresh_blocked, finish_at = reply
    (jobid, desc, created, maxage, incarnation, version, running, done, failed, pct_sum, last,
     expected, job_failed, job_meta) = values  # fmt: skip
    expected = int(expected) if expected else None
    summary = indexed_summary(
        workers=workers,
        running=int(running or 0),
        done=int(done or 0),
        failed=int(failed or 0),
        stale=stale,
        pct_sum=float(pct_sum or 0),
        last_update=float(last) if last else None,
        finish_at=float(finish_at) if finish_at else None,
        now=now,
        expected=expected,
    )
    return JobInfo(
        jobid=jobid.decode(),
        desc=desc.decode(),
        created=float(created),
        maxage=int(maxage),
        incarnation=incarnation.decode(),
        version=int(version),
        workers=workers,
        summary=summary,
        expected=expected,
        job_failed=JobFailure.from_json(job_failed),
        meta=json.loads(job_meta) if job_meta else None,
    )


class _WorkIds(Sequence):
    """Worker ids from the order index's members, decoded only when read: a chart of 100,000
    workers prints about a hundred of them."""

    def __init__(self, members: list[bytes]) -> None:
        self._members = members

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return _workid(self._members[i]).decode()


def _after(natural: bytes) -> bytes:
    """A ZRANGEBYLEX start past every member of the worker whose natural_bytes this is (its
    natural_bytes, NUL, its bar, whatever the bar), and before any other worker's."""
    return b"(" + natural + b"\x01"


def _after_member(member: bytes) -> bytes:
    """_after for the worker of this order index member."""
    return _after(member[: -BAR.itemsize - 1])


def _workid(member: bytes) -> bytes:
    """The id in a member of a job's order index: natural_bytes (the id after its first NUL),
    NUL, the packed bar."""
    return member[member.index(b"\x00") + 1 : -BAR.itemsize - 1]


def _snapshot(
    meta: dict[bytes, bytes],
    workers: dict[bytes, bytes],
    columns: WorkerColumns | None = None,
    rows: tuple[WorkerRow, ...] = (),
    counters: dict[bytes, bytes] | None = None,
) -> JobSnapshot:
    if workers:
        counters = counters or {}
        rows = tuple(
            sorted(
                (
                    decode_row(w.decode(), r.decode(), counters=counters.get(w))
                    for w, r in workers.items()
                ),
                key=lambda r: natural_key(r.workid),
            )
        )
    return JobSnapshot(
        jobid=meta[b"jobid"].decode(),
        desc=meta[b"desc"].decode(),
        created=float(meta[b"created"]),
        maxage=int(meta[b"maxage"]),
        incarnation=meta[b"incarnation"].decode(),
        version=int(meta[b"version"]),
        workers=rows,
        columns=columns,
        expected=int(meta[b"expected"]) if meta.get(b"expected") else None,
        job_failed=JobFailure.from_json(meta.get(b"job_failed")),
    )


# Why Redis refuses a write, by the error code it answers with (also inside a script's error).
_REFUSALS = {
    "OOM": "Redis is out of memory (maxmemory)",
    "READONLY": "Redis is a read-only replica",
    "MISCONF": "Redis cannot persist to disk and refuses writes",
    "LOADING": "Redis is loading its data",
}


def write_refusal(exc: ResponseError) -> str | None:
    """Why Redis refused a write, if `exc` is such a refusal (an outage, not a bug)."""
    if isinstance(exc, OutOfMemoryError):
        return _REFUSALS["OOM"]
    if isinstance(exc, ReadOnlyError):
        return _REFUSALS["READONLY"]
    text = str(exc)  # other codes, and errors raised inside a script, keep the code in the text
    for code, reason in _REFUSALS.items():
        if text.startswith(code) or f"-{code} " in text or f": {code} " in text:
            return reason
    return None


def _parts(per_job: dict, size: int):
    """Split a batch's (job, updates) pairs into lists of pairs holding at most `size` updates
    in all (at least one part, for an empty batch too, to clear its record)."""
    part, count = [], 0
    for job, updates in per_job.items():
        for start in range(0, len(updates), size):
            chunk = updates[start : start + size]
            if count + len(chunk) > size and part:
                yield part
                part, count = [], 0
            part.append((job, chunk))
            count += len(chunk)
    yield part


def _registered_script(redis: Redis, name: str):
    return redis.register_script(lua_source(name))
