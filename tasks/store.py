"""Every Redis key name and command of the service.

Layout (T is the job id, base64url-encoded, so no id can reach another job's keys, and every key
of a job shares the hash tag {T}):
  progress:{T}:meta      hash   jobid, desc, created, maxage, incarnation, version (bumped by
                                every change), rendered_at, updates (rows ingested), renders,
                                running, failed (worker counts), finished, notify, secret
  progress:{T}:workers   hash   workid -> row (see encode_row)
  progress:{T}:chart     hash   png, etag, version, stale
  progress:jobs:expiry   zset   T -> time after which the job is deleted
  progress:jobs:recent   zset   T -> creation time, for the overview
  progress:inbox         list   accepted updates not yet claimed by an ingest worker (see _entry)
  progress:inbox:drain   string set while a drain task is queued or running (expires)
  progress:batches       hash   batch id -> updates claimed from the inbox, not yet applied
  progress:batches:due   zset   batch id -> time claimed
  progress:render:due    zset   T -> time a render was scheduled or started, until it finishes
  progress:render:later  zset   T -> time a running worker turns stale, so the chart must change
  progress:stats         hash   service-wide counters and latency histograms (see metrics)
The global keys make multi-job operations cheap; a Redis Cluster would need them split per slot.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from domain.model import STORED_LETTER, JobSnapshot, WorkerRow, natural_key, reported_state

EXPIRY = "progress:jobs:expiry"
RECENT = "progress:jobs:recent"
INBOX = "progress:inbox"
DRAIN_FLAG = "progress:inbox:drain"
BATCHES = "progress:batches"
BATCHES_DUE = "progress:batches:due"
RENDER_DUE = "progress:render:due"
RENDER_LATER = "progress:render:later"
STATS = "progress:stats"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAMP_DIGITS = 17  # microseconds since 1970, zero-padded, so rows compare as strings

# Whether a presented secret digest matches the stored one, in time that does not depend on where
# they differ. No stored digest: the job is open to all, as the MWA guide has it.
_SECRET_MATCHES = """
local function secret_matches(stored, presented)
  if not stored then return true end
  if #stored ~= #presented then return false end
  local diff = 0
  for i = 1, #stored do diff = bit.bor(diff, bit.bxor(stored:byte(i), presented:byte(i))) end
  return diff == 0
end
"""

# Queue a drain task unless one is already queued or running; returns 1 if one is due now. With
# an empty message the caller must push it (store.push_drain): the web process then builds and
# sends a message only when one is needed. The flag expires, so a drain message lost with a
# killed process is replaced by the next accept (or by beat's sweep).
_ENSURE_DRAIN = """
local function ensure_drain(flag, queue, now, ttl_ms, message)
  if not redis.call('SET', flag, now, 'NX', 'PX', ttl_ms) then return 0 end
  if message == '' then return 1 end  -- the caller pushes one
  redis.call('LPUSH', queue, message)
  return 1
end
"""

# Accept updates: look up each one's job incarnation, append the accepted ones to the inbox and
# take the drain flag if no drain is queued, in one atomic step; the caller then queues the drain
# before it answers. Status per update: 1 accepted, 0 unknown job, 2 job has too many workers,
# 3 wrong secret; then 1 if a drain must be queued now. With all_or_nothing set, one refused
# update refuses them all.
_ACCEPT = (
    _ENSURE_DRAIN
    + _SECRET_MATCHES
    + """
local now, max_workers, ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local all_or_nothing = ARGV[4] == '1'
local statuses, entries, jobs = {}, {}, {}
local refused = false
for i = 5, #ARGV, 4 do
  local tag, workid, row, secret = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local workers = 'progress:{' .. tag .. '}:workers'
  local job = jobs[tag]
  if job == nil then
    local meta = redis.call('HMGET', 'progress:{' .. tag .. '}:meta', 'incarnation', 'secret')
    job = {inc = meta[1], secret = meta[2], size = redis.call('HLEN', workers)}
    jobs[tag] = job
  end
  local status = 1
  if not job.inc then
    status = 0
  elseif not secret_matches(job.secret, secret) then
    status = 3
  elseif job.size >= max_workers and redis.call('HEXISTS', workers, workid) == 0 then
    status = 2
  end
  statuses[#statuses + 1] = status
  if status == 1 then
    entries[#entries + 1] = table.concat({tag, job.inc, workid, row}, '\\n')
  else
    refused = true
  end
end
if (refused and all_or_nothing) or #entries == 0 then
  statuses[#statuses + 1] = 0
  return statuses
end
for i = 1, #entries, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(entries, i, math.min(i + 999, #entries)))
end
statuses[#statuses + 1] = ensure_drain(KEYS[2], KEYS[3], now, ttl_ms, '')
return statuses
"""
)

# Claim the oldest inbox entries as one batch record (so a worker killed while applying them
# leaves the record for beat's sweep). If more are waiting, queue the next drain at once, so
# other ingest processes work in parallel; if none, clear the flag.
_CLAIM = (
    _ENSURE_DRAIN
    + """
local entries = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
if #entries > 0 then
  redis.call('LTRIM', KEYS[1], #entries, -1)
  redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(entries))
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
end
redis.call('DEL', KEYS[2])
if redis.call('LLEN', KEYS[1]) > 0 then
  ensure_drain(KEYS[2], KEYS[5], ARGV[2], ARGV[4], ARGV[5])
end
return entries
"""
)

# Apply one job's share of a batch: newer stamp wins per worker, other incarnations are dropped.
# A row's state letter (after its stamp) keeps the job's counts of running and failed workers
# current, so completion is noticed here, once per incarnation (HSETNX finished).
# Returns {rows changed, 1 if this call scheduled a render, time the last render started,
# 'done'/'failed' if the job just finished, its notify URL}.
_APPLY = """
if redis.call('HGET', KEYS[1], 'incarnation') ~= ARGV[1] then return {0, 0, '0', '', ''} end
redis.call('HINCRBY', KEYS[1], 'updates', (#ARGV - 3) / 2)
local changed, added, running, failed = 0, 0, 0, 0
for i = 4, #ARGV, 2 do
  local old, new = redis.call('HGET', KEYS[2], ARGV[i]), ARGV[i + 1]
  if (not old) or string.sub(old, 1, DIGITS) < string.sub(new, 1, DIGITS) then
    redis.call('HSET', KEYS[2], ARGV[i], new)
    changed = changed + 1
    local was = old and string.sub(old, DIGITS + 1, DIGITS + 1) or ''
    local now_is = string.sub(new, DIGITS + 1, DIGITS + 1)
    if not old then added = added + 1 end
    if was == 'r' then running = running - 1 elseif was == 'f' then failed = failed - 1 end
    if now_is == 'r' then running = running + 1 elseif now_is == 'f' then failed = failed + 1 end
  end
end
if changed == 0 then return {0, 0, '0', '', ''} end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HINCRBY', KEYS[4], 'workers', added)
running = redis.call('HINCRBY', KEYS[1], 'running', running)
failed = redis.call('HINCRBY', KEYS[1], 'failed', failed)
local finished = ''
if failed > 0 or running == 0 then
  finished = failed > 0 and 'failed' or 'done'
  if redis.call('HSETNX', KEYS[1], 'finished', finished) == 0 then finished = '' end
end
local scheduled = redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[3])
local meta = redis.call('HMGET', KEYS[1], 'rendered_at', 'notify')
return {changed, scheduled, meta[1], finished, finished ~= '' and meta[2] or ''}
""".replace("DIGITS", str(STAMP_DIGITS))

# (Re)create a job, unless it exists with a secret and the right one was not presented.
_CREATE = (
    _SECRET_MATCHES
    + """
if not secret_matches(redis.call('HGET', KEYS[1], 'secret'), ARGV[8]) then return 0 end
redis.call('HINCRBY', KEYS[7], 'workers', 0 - redis.call('HLEN', KEYS[2]))
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'jobid', ARGV[2], 'desc', ARGV[3], 'created', ARGV[4],
           'maxage', ARGV[5], 'incarnation', ARGV[6], 'version', 0, 'rendered_at', 0)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'secret', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'notify', ARGV[9]) end
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
return 1
"""
)

# Start a render: read a consistent snapshot and turn the job's entry in render:due into a lease
# (re-scored now), so a render lost with a killed process is re-sent by the sweep. Updates applied
# meanwhile find the entry and schedule nothing; finishing the render notices them instead.
_BEGIN_RENDER = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], 'rendered_at', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
        redis.call('HMGET', KEYS[3], 'version', 'stale')}
"""

# Finish a render: keep the chart (if any) unless the job was re-created or a newer chart is
# stored; end the lease, or keep it and return 2 when the job changed during the render.
_FINISH_RENDER = """
if redis.call('HGET', KEYS[1], 'incarnation') ~= ARGV[1] then return 0 end
if ARGV[5] ~= '' then
  local stored = tonumber(redis.call('HGET', KEYS[2], 'version') or '-1')
  if stored <= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[2], 'version', ARGV[2], 'etag', ARGV[3], 'stale', ARGV[4],
               'png', ARGV[5])
    redis.call('HINCRBY', KEYS[1], 'renders', 1)
  end
end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6]) end
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 2 end
redis.call('ZREM', KEYS[3], ARGV[6])
return 1
"""

_EXPIRE = """
local deadline = redis.call('ZSCORE', KEYS[4], ARGV[1])
if (not deadline) or tonumber(deadline) > tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', ARGV[3], 'workers', 0 - redis.call('HLEN', KEYS[2]))
redis.call('HINCRBY', ARGV[3], 'expired_jobs', 1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

# Jobs whose redraw time has come: move them to render:due (unless a render is already due).
_WAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local woken = {}
for _, tag in ipairs(due) do
  redis.call('ZREM', KEYS[1], tag)
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], tag) == 1 then woken[#woken + 1] = tag end
end
return woken
"""


_KICK = (
    _ENSURE_DRAIN
    + """
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
ensure_drain(KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)

# Take the members of a due-set that are overdue, re-scoring them now, so each is re-sent at
# most once per redeliver_after however often the sweep runs.
_CLAIM_OVERDUE = """
local overdue = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(overdue) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return overdue
"""


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
    prefix = f"progress:{{{tag}}}"
    return f"{prefix}:meta", f"{prefix}:workers", f"{prefix}:chart"


class StampClock:
    """Strictly increasing microsecond timestamps: the order in which this process accepted
    updates, which is the order in which they must win."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


def encode_row(stamp: int, current: float, total: float, ok: bool, desc: str) -> str:
    """A worker row: its stamp, a state letter (r running, d done, f failed) that the apply
    script counts without parsing JSON, then the values."""
    state = STORED_LETTER[reported_state(ok, current, total)]
    # The JSON of [current, total, ok, desc], written out: the numbers are finite (validated), so
    # their repr is JSON, and json.dumps for the whole row would cost a third of an update.
    text = json.dumps(desc, ensure_ascii=False) if desc else '""'
    flag = "true" if ok else "false"
    return f"{stamp:0{STAMP_DIGITS}d}{state}[{float(current)!r},{float(total)!r},{flag},{text}]"


def decode_row(workid: str, row: str) -> WorkerRow:
    current, total, ok, desc = json.loads(row[STAMP_DIGITS + 1 :])
    return WorkerRow(workid, current, total, ok, desc, int(row[:STAMP_DIGITS]) / 1e6)


@dataclass(frozen=True)
class Update:
    """One accepted worker state, ready for the queue."""

    jobid: str
    workid: str
    row: str  # encode_row(...)
    secret: str = ""


@dataclass
class AppliedBatch:
    """What applying a batch changed that other tasks must act on."""

    oldest_accepted: float  # when the oldest update in it was accepted
    renders_due: dict[str, float] = field(default_factory=dict)  # tag -> last render start
    finished: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, state, notify)


@dataclass(frozen=True)
class DrainTask:
    """How to make the broker message that starts a drain, the broker list it goes to, and how
    long a queued drain is trusted before another may be queued."""

    queue: str
    message: Callable[[], bytes]
    ttl_ms: int


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
        self._accept = redis.register_script(_ACCEPT)
        self._claim = redis.register_script(_CLAIM)
        self._kick = redis.register_script(_KICK)
        self._apply = redis.register_script(_APPLY)
        self._create = redis.register_script(_CREATE)
        self._begin_render = redis.register_script(_BEGIN_RENDER)
        self._finish_render = redis.register_script(_FINISH_RENDER)
        self._expire = redis.register_script(_EXPIRE)
        self._claim_overdue = redis.register_script(_CLAIM_OVERDUE)
        self._wake = redis.register_script(_WAKE)

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
    ) -> str | None:
        """(Re)create a job with no workers; returns its tag, or None if the job exists with a
        secret and `secret` is not it. Updates queued for an earlier incarnation of the same id
        are dropped when applied."""
        tag = job_tag(jobid)
        created = self._create(
            keys=[*_keys(tag), EXPIRY, RECENT, RENDER_DUE, STATS],
            args=[
                tag,
                jobid,
                desc,
                repr(now),
                maxage,
                incarnation,
                repr(now + maxage),
                secret_digest(jobid, secret),
                notify,
            ],
        )
        return tag if created else None

    def snapshot(self, jobid: str) -> JobSnapshot | None:
        meta_key, workers_key, _ = _keys(job_tag(jobid))
        with self.redis.pipeline(transaction=True) as pipe:
            meta, workers = pipe.hgetall(meta_key).hgetall(workers_key).execute()
        return _snapshot(meta, workers) if meta else None

    def chart(self, jobid: str, with_png: bool) -> Chart | None:
        _, _, chart_key = _keys(job_tag(jobid))
        redis = self._own_connection()
        if with_png:
            etag, png = redis.hmget(chart_key, "etag", "png")
        else:
            etag, png = redis.hget(chart_key, "etag"), None
        return Chart(etag.decode(), png) if etag else None

    def job_exists(self, jobid: str) -> bool:
        return bool(self.redis.exists(_keys(job_tag(jobid))[0]))

    def recent_jobs(self, offset: int, limit: int) -> tuple[int, list[JobSnapshot]]:
        with self.redis.pipeline(transaction=False) as pipe:
            total, tags = pipe.zcard(RECENT).zrevrange(RECENT, offset, offset + limit - 1).execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                meta_key, workers_key, _ = _keys(tag.decode())
                pipe.hgetall(meta_key).hgetall(workers_key)
            replies = pipe.execute()
        jobs = [_snapshot(m, w) for m, w in zip(replies[::2], replies[1::2]) if m]
        return total, jobs

    # -- the update path ---------------------------------------------------------------------
    def accept_updates(
        self,
        updates: list[Update],
        now: float,
        max_workers: int,
        drain: DrainTask,
        all_or_nothing: bool = False,
    ) -> list[int]:
        """Append updates to the inbox, durably, and make sure a drain task is queued. Returns
        per update 1 accepted, 0 unknown job, 2 too many workers, 3 wrong secret."""
        args: list = [repr(now), max_workers, drain.ttl_ms, int(all_or_nothing)]
        for u in updates:
            args += [job_tag(u.jobid), u.workid, u.row, secret_digest(u.jobid, u.secret)]
        *statuses, drain_due = self._accept(
            keys=[INBOX, DRAIN_FLAG, drain.queue], args=args, client=self._own_connection()
        )
        if drain_due:
            self.redis.lpush(drain.queue, drain.message())
        return statuses

    def claim_inbox(self, batch_id: str, now: float, limit: int, drain: DrainTask) -> list[str]:
        """Move up to `limit` inbox entries into the batch record `batch_id` and return them."""
        entries = self._claim(
            keys=[INBOX, DRAIN_FLAG, BATCHES, BATCHES_DUE, drain.queue],
            args=[batch_id, repr(now), limit, drain.ttl_ms, drain.message()],
        )
        return [e.decode() for e in entries]

    def ensure_drain(self, now: float, drain: DrainTask) -> bool:
        """Queue a drain if the inbox holds entries and none is queued (beat's sweep)."""
        return bool(
            self._kick(
                keys=[INBOX, DRAIN_FLAG, drain.queue],
                args=[repr(now), drain.ttl_ms, drain.message()],
            )
        )

    def load_batch(self, batch_id: str) -> list[str] | None:
        record = self.redis.hget(BATCHES, batch_id)
        return json.loads(record) if record else None

    def apply_batch(self, batch_id: str, entries: list[str], now: float) -> AppliedBatch:
        """Apply a claimed batch and clear its record. Safe to repeat: a row only replaces an
        older one."""
        per_job: dict[tuple[str, str], list[str]] = defaultdict(list)
        oldest = None
        for entry in entries:
            tag, incarnation, workid, row = entry.split("\n", 3)
            per_job[(tag, incarnation)] += [workid, row]
            stamp = row[:STAMP_DIGITS]
            oldest = stamp if oldest is None or stamp < oldest else oldest
        with self.redis.pipeline(transaction=False) as pipe:
            for (tag, incarnation), pairs in per_job.items():
                meta_key, workers_key, _ = _keys(tag)
                self._apply(
                    keys=[meta_key, workers_key, RENDER_DUE, STATS],
                    args=[incarnation, repr(now), tag, *pairs],
                    client=pipe,
                )
            pipe.hdel(BATCHES, batch_id).zrem(BATCHES_DUE, batch_id)
            results = pipe.execute()
        applied = AppliedBatch(oldest_accepted=int(oldest) / 1e6)
        for (tag, _), (_, scheduled, rendered_at, finished, notify) in zip(per_job, results):
            if scheduled:
                applied.renders_due[tag] = float(rendered_at)
            if finished:
                applied.finished.append((tag, finished.decode(), notify.decode()))
        return applied

    # -- rendering ---------------------------------------------------------------------------
    def begin_render(self, tag: str, now: float) -> RenderStart | None:
        meta_key, workers_key, chart_key = _keys(tag)
        reply = self._begin_render(
            keys=[meta_key, workers_key, chart_key, RENDER_DUE], args=[tag, repr(now)]
        )
        if not reply:
            return None
        meta, workers, (version, stale) = reply
        return RenderStart(
            _snapshot(_pairs(meta), _pairs(workers)),
            int(version) if version is not None else None,
            int(stale) if stale is not None else None,
        )

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
            tag = tag.decode()
            deleted += self._expire(
                keys=[*_keys(tag), EXPIRY, RECENT, RENDER_DUE, RENDER_LATER],
                args=[tag, repr(now), STATS],
            )
        return deleted

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


def _snapshot(meta: dict[bytes, bytes], workers: dict[bytes, bytes]) -> JobSnapshot:
    rows = [decode_row(w.decode(), r.decode()) for w, r in workers.items()]
    rows.sort(key=lambda r: natural_key(r.workid))
    return JobSnapshot(
        jobid=meta[b"jobid"].decode(),
        desc=meta[b"desc"].decode(),
        created=float(meta[b"created"]),
        maxage=int(meta[b"maxage"]),
        incarnation=meta[b"incarnation"].decode(),
        version=int(meta[b"version"]),
        workers=tuple(rows),
    )
