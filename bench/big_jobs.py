"""Sections 7 and 8 of `make bench`: big jobs and hostile clients.

7: a 100,000-worker job built with ten JSON batches of 10,000 updates: its status reads against
the same reads of a 10-worker job (measured in the same run, interleaved), the CPU time of one
render of it (in this process, through Pipeline.render, split between reading the snapshot and
drawing), update-to-visible on it under about 2,000 updates/s, and /progress/jobs over 20 such
jobs; and the worst job the defaults allow (100,000 workers with 256-character ids): the longest
Redis call (slowlog) while it is built, rendered after an update, and deleted.
8: a create flood (wrk, 50 connections, unique job ids) while updates flow to another job and
probes measure update-to-visible, against the same without the flood; once with the default
create rate limit, once with PROGRESS_CREATE_RATE_LIMIT=0 (the web process restarted with it).

Every load is bounded in count and time, on loopback; the only process restarted is the bench
service's own web process, by its PID (Service.kill)."""

from __future__ import annotations

import json
import math
import os
import queue
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from api.resources import PAGE_PROBLEMS
from bench import probes
from bench.cpu import _stats, describe
from bench.loads import _DONE, _THREADS, Wrk, run_wrk, single_updates_script, static_script
from bench.pipeline import (
    Connection,
    activity,
    meta_key,
    processed,
    stats,
    wait_applied,
    wait_charts,
)
from bench.report import judge, load_average, num
from tasks.settings import Settings
from tasks.store import RECENT, Store, job_tag

BIG = 100_000  # workers of a big job (PROGRESS_MAX_WORKERS_PER_JOB's default)
BIG_JOBS = [f"big{i:02d}" for i in range(20)]  # the first is the one measured
SMALL_JOB = "small10"
HOSTILE_JOB = "hostile"  # the job updated and probed during the floods
BATCH = 10_000  # updates per JSON POST (the most one may hold)
FAILED_EVERY = 100  # worker i fails when i % 100 == 7: 1 %
READS = 200  # sequential requests per read
MAX_PENDING = 300_000  # the builder waits while more updates than this wait to be applied
TIMES_2X = 2.0
MOST_CALL_MS = 50  # the longest one Redis call of the service may take (issue 18)


@dataclass
class Built:
    big: str = BIG_JOBS[0]
    jobs: list[str] = field(default_factory=list)
    ok: bool = False


def _state(b) -> Built:
    if getattr(b, "big", None) is None:
        b.big = Built()
    return b.big


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {_quantile(values, 0.95):.1f}"


# -- building jobs through the service -------------------------------------------------------


def create(service, jobid: str, tries: int = 120) -> None:
    """Create a job, waiting as told on 429 (other sections may have spent the burst)."""
    for _ in range(tries):
        response = service.get("create", jobid=jobid, desc=f"bench job {jobid}")
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", 1)))
            continue
        response.raise_for_status()
        return
    raise RuntimeError(f"create {jobid}: still 429 after {tries} tries")


def worker_updates(jobid: str, workers: int, round_: int = 0) -> list[dict]:
    """One update per worker: w0..w(n-2) and the probes' worker (so that a probe reports as
    a known worker of a full job); 1 % failed, the others running or done."""
    out = []
    for i in range(workers):
        workid = f"w{i}" if i < workers - 1 else probes.PROBE_WORKER
        ok = 0 if i % FAILED_EVERY == 7 else 1
        out.append(
            {
                "jobid": jobid,
                "workid": workid,
                "current": (i + round_) % 101,
                "total": 100,
                "ok": ok,
            }
        )
    return out


def send_batches(
    base_url: str, store: Store, batches: list[list[dict]], threads: int = 4
) -> tuple[int, int]:
    """POST each batch as one JSON array (retrying a 503 after 1 s); returns the updates
    accepted and the 503s. Waits while ingest is more than MAX_PENDING updates behind, so the
    inbox bound is never what refuses them."""
    todo: queue.Queue = queue.Queue()
    for batch in batches:
        todo.put(json.dumps(batch, separators=(",", ":")).encode())
    accepted, refused = [0] * threads, [0] * threads
    failures: list[str] = []

    def run(k: int) -> None:
        conn = Connection(base_url)
        try:
            while True:
                try:
                    body = todo.get_nowait()
                except queue.Empty:
                    return
                for _ in range(60):
                    while store.pending_updates() > MAX_PENDING:
                        time.sleep(0.2)
                    status, reply = conn.request(
                        "POST", "/progress/update", body, {"Content-Type": "application/json"}
                    )
                    if status == 503:
                        refused[k] += 1
                        time.sleep(1)
                        continue
                    if status != 202:
                        failures.append(f"HTTP {status}: {reply[:200]!r}")
                    else:
                        accepted[k] += int(json.loads(reply)["accepted"])
                    break
        finally:
            conn.close()

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} batches refused, first: {failures[0]}")
    return sum(accepted), sum(refused)


def build(b, jobs: list[tuple[str, int]]) -> tuple[int, float, int, int]:
    """Create the jobs and give each its workers in batches of BATCH; wait until every update is
    applied and every chart current. Returns updates accepted, seconds until applied, batches
    sent and 503s answered (and retried)."""
    for jobid, _ in jobs:
        create(b.service, jobid)
    ids = [j for j, _ in jobs]
    baseline = processed(b.store, ids)
    batches = []
    for jobid, workers in jobs:
        updates = worker_updates(jobid, workers)
        batches += [updates[i : i + BATCH] for i in range(0, len(updates), BATCH)]
    t0 = time.monotonic()
    accepted, refused = send_batches(b.service.url, b.store, batches)
    applied = wait_applied(b.store, ids, baseline, accepted, timeout=600)
    if applied.at is None or applied.processed < accepted:
        raise RuntimeError(f"{applied.processed:,} of {accepted:,} updates applied")
    if not wait_charts(b.store, ids, timeout=180):
        b.report.note("S7: the charts of the built jobs did not all settle within 180 s")
    return accepted, applied.at - t0, len(batches), refused


# -- 7: reads, render, update-to-visible, listing -------------------------------------------


def _read_times(base_url: str, paths: list[str], count: int) -> dict[str, list[float]]:
    """Each path `count` times on one keep-alive connection, the paths interleaved; ms."""
    times: dict[str, list[float]] = {p: [] for p in paths}
    conn = Connection(base_url)
    try:
        for _ in range(count):
            for path in paths:
                t0 = time.perf_counter()
                status, body = conn.request("GET", path)
                times[path].append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
    finally:
        conn.close()
    return times


def section_big_reads(b) -> None:
    s, r, st = "7 big job reads", b.report, _state(b)
    r.note(f"S7: building 1 x 10 and {len(BIG_JOBS)} x {BIG:,} workers; load avg {load_average()}")
    used0 = int(b.store.redis.info("memory")["used_memory"])
    accepted, seconds, sent, refused = build(b, [(SMALL_JOB, 10)] + [(j, BIG) for j in BIG_JOBS])
    used1 = int(b.store.redis.info("memory")["used_memory"])
    st.jobs, st.ok = list(BIG_JOBS), True
    r.add(
        s,
        f"build: {accepted:,} updates in batches of {BATCH:,}, applied",
        f"{seconds:.0f} s ({accepted / seconds:,.0f}/s)",
    )
    r.add(
        s, "build: batch POSTs answered 503 (retried after 1 s)", f"{refused} of {sent + refused}"
    )
    r.add(
        s,
        f"Redis used_memory for {len(BIG_JOBS) * BIG:,} worker rows (+ indexes, charts)",
        f"{(used1 - used0) / 2**20:,.0f} MiB "
        f"({(used1 - used0) / (len(BIG_JOBS) * BIG):,.0f} B/row)",
    )
    big, small = st.big, SMALL_JOB
    status = b.service.get("status", jobid=big, workers="none").json()
    r.note(
        f"S7 {big}: workers_reported {status['workers_reported']:,}, counts {status['counts']}, "
        f"percent {status['percent']}"
    )

    def paths(jobid: str) -> dict[str, str]:
        return {
            "workers=none": f"/progress/status?jobid={jobid}&workers=none",
            # the show page's poll, as Show builds its URL
            f"workers=problems&limit={PAGE_PROBLEMS}": (
                f"/progress/status?jobid={jobid}&workers=problems&limit={PAGE_PROBLEMS}"
            ),
        }

    pb, ps = paths(big), paths(small)
    times = _read_times(b.service.url, [*pb.values(), *ps.values()], READS)
    for name in pb:
        tb, ts = times[pb[name]], times[ps[name]]
        r.add(s, f"status {name}: median / p95 ms, 10 workers", _ms(ts))
        r.add(s, f"status {name}: median / p95 ms, {BIG:,} workers", _ms(tb))
        for label, q in (("median", 0.5), ("p95", 0.95)):
            ratio = _quantile(tb, q) / _quantile(ts, q)
            r.add(
                s,
                f"status {name}: {label} {BIG:,} / 10 workers",
                num(ratio, 2, " x"),
                f"<= {TIMES_2X:g} x",
                judge(ratio, at_most=TIMES_2X),
            )
        loads = {}
        for jobid, path in ((small, ps[name]), (big, pb[name])):
            meter = b.cpu()
            loads[jobid] = run_wrk(b.service.url + path, static_script({}), 8, 4)
            loads[jobid + "cpu"] = describe(meter.percent())
        lb, ls = loads[big], loads[small]
        r.add(
            s,
            f"status {name}: req/s 10 / {BIG:,} workers (wrk 8 conns, 4 s)",
            f"{ls.ok_per_s:,.0f} / {lb.ok_per_s:,.0f}",
        )
        ratio = ls.ok_per_s / lb.ok_per_s if lb.ok_per_s else None
        r.add(
            s,
            f"status {name}: req/s 10 / {BIG:,} workers",
            num(ratio, 2, " x"),
            f"<= {TIMES_2X:g} x",
            judge(ratio, at_most=TIMES_2X),
        )
        r.note(
            f"S7 status {name}: response {lb.bytes / max(lb.requests, 1):,.0f} B ({BIG:,}) vs "
            f"{ls.bytes / max(ls.requests, 1):,.0f} B (10); wrk p50/p99 {ls.p50_ms:.1f}/"
            f"{ls.p99_ms:.1f} ms (10) vs {lb.p50_ms:.1f}/{lb.p99_ms:.1f} ms ({BIG:,}); non-2xx "
            f"{ls.non_2xx}/{lb.non_2xx}; CPU (10): {loads[small + 'cpu']}; CPU ({BIG:,}): "
            f"{loads[big + 'cpu']}"
        )
    r.note(f"S7 reads done; load avg {load_average()}")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _TimedStore(Store):
    """The service's Store, timing begin_render: CPU of this process, wall time, Redis's CPU."""

    def __init__(self, redis, redis_pid: int) -> None:
        super().__init__(redis)
        self.redis_pid = redis_pid
        self.last: tuple[float, float, float] | None = None

    def begin_render(self, tag, now):
        r0 = _proc_cpu(self.redis_pid)
        c0, w0 = time.process_time(), time.perf_counter()
        result = super().begin_render(tag, now)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        self.last = (cpu, wall, _proc_cpu(self.redis_pid) - r0)
        return result


def _nudge(b, jobid: str, current: int) -> None:
    """One update to a job (its worker w0), waited for until applied (the version moves)."""
    key = meta_key(jobid)
    before = b.store.redis.hget(key, "version")
    response = b.service.get("update", jobid=jobid, workid="w0", current=current, total=100)
    response.raise_for_status()
    deadline = time.monotonic() + 30
    while b.store.redis.hget(key, "version") == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"update of {jobid} not applied within 30 s")
        time.sleep(0.002)


def section_big_render(b) -> None:
    from renderer.chart import render_png
    from tasks.runtime import build_pipeline

    s, r, st = "7 big render", b.report, _state(b)
    if not st.ok:
        raise RuntimeError("the big jobs were not built")
    store = _TimedStore(b.redis.client(), b.redis.proc.pid)
    pipeline = build_pipeline(store, Settings.from_env(b.service.env))
    tag = job_tag(st.big)
    drawn: list[tuple[float, float, int]] = []

    def draw(snapshot, **kwargs) -> bytes:
        c0, w0 = time.process_time(), time.perf_counter()
        png = draw_png(snapshot, **kwargs)
        drawn.append((time.process_time() - c0, time.perf_counter() - w0, len(png)))
        return png

    draw_png = render_png
    samples, raced = [], 0
    for attempt in range(12):
        if len(samples) >= 6:  # the first one warms up (fonts, caches)
            break
        wait_charts(b.store, [st.big], timeout=30)
        _nudge(b, st.big, 50 + attempt)
        n = len(drawn)
        c0, w0 = time.process_time(), time.perf_counter()
        pipeline.render(tag, draw)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        if len(drawn) == n:  # the render worker drew this version first
            raced += 1
            continue
        samples.append((cpu, wall, store.last, drawn[-1]))
    samples = samples[1:]
    if not samples:
        raise RuntimeError(f"no render drawn in the bench process ({raced} raced)")
    total_cpu = [x[0] * 1000 for x in samples]
    total_wall = [x[1] * 1000 for x in samples]
    begin_cpu = [x[2][0] * 1000 for x in samples]
    begin_wall = [x[2][1] * 1000 for x in samples]
    begin_redis = [x[2][2] * 1000 for x in samples]
    draw_cpu = [x[3][0] * 1000 for x in samples]
    draw_wall = [x[3][1] * 1000 for x in samples]
    med = statistics.median
    r.add(
        s,
        f"Pipeline.render of {BIG:,} workers: CPU ms (median of {len(samples)})",
        f"{med(total_cpu):,.0f}",
        "<= 300 ms",
        judge(med(total_cpu), at_most=300),
    )
    r.add(s, "  wall ms (median)", f"{med(total_wall):,.0f}")
    r.add(
        s,
        "  of which begin_render: CPU here / Redis CPU / wall ms",
        f"{med(begin_cpu):,.0f} / {med(begin_redis):,.0f} / {med(begin_wall):,.0f}",
    )
    r.add(
        s,
        "  of which draw (render_png): CPU / wall ms",
        f"{med(draw_cpu):,.0f} / {med(draw_wall):,.0f}",
    )
    rest = med([t - bc - d for t, bc, d in zip(total_cpu, begin_cpu, draw_cpu)])
    r.add(s, "  rest (bars, ETag, finish_render): CPU ms", f"{rest:,.0f}")
    r.note(
        f"S7 render of {st.big} in the bench process: CPU ms "
        f"{', '.join(f'{x:.0f}' for x in total_cpu)}"
        f"; begin_render CPU {', '.join(f'{x:.0f}' for x in begin_cpu)}, Redis CPU (10 ms ticks) "
        f"{', '.join(f'{x:.0f}' for x in begin_redis)}; draw CPU "
        f"{', '.join(f'{x:.0f}' for x in draw_cpu)}; PNG {samples[-1][3][2]:,} B; {raced} tries "
        f"lost to the render worker; load avg {load_average()}"
    )


WORST = "worst256"  # a job of BIG workers with ids of the longest length the defaults allow


def worst_batches(jobid: str, workers: int, id_length: int, body_bytes: int) -> list[list[dict]]:
    """One update per worker, ids padded to id_length, in batches whose JSON fits body_bytes."""
    batches, batch, size = [], [], 2
    for i, update in enumerate(worker_updates(jobid, workers)):
        update["workid"] = f"w{i:06d}-".ljust(id_length, "x")
        n = len(json.dumps(update, separators=(",", ":"))) + 1
        if size + n > body_bytes:
            batches.append(batch)
            batch, size = [], 2
        batch.append(update)
        size += n
    return batches + [batch]


def _slowest(redis, since_id: int) -> tuple[float, str]:
    """The longest call in the slowlog after entry `since_id`: ms and what it was (a script by
    its file name)."""
    import hashlib

    from tasks.store import LUA_DIR, lua_source

    names = {
        hashlib.sha1(lua_source(f.stem).encode()).hexdigest(): f.stem for f in LUA_DIR.glob("*.lua")
    }
    entries = [e for e in redis.slowlog_get(100_000) if e["id"] > since_id]
    if not entries:
        return 0.0, "none over the slowlog's 1 ms"
    top = max(entries, key=lambda e: e["duration"])
    words = top["command"].decode(errors="replace").split()
    what = f"{names.get(words[1], words[1])}.lua" if words[0] == "EVALSHA" else words[0]
    return top["duration"] / 1000, what


def _last_slowlog_id(redis) -> int:
    last = redis.slowlog_get(1)
    return last[0]["id"] if last else -1


def section_worst_render(b) -> None:
    """The worst job the defaults allow (BIG workers, ids of max_id_length characters) built by
    POSTs under the body limit: the longest Redis call (slowlog) while it is built, while the
    render worker draws it after one update, and while it is deleted. Read with a patient
    client: a call of seconds is what this measures."""
    import redis as redis_py

    s, r = "7 worst-job render", b.report
    defaults = Settings()
    redis = redis_py.Redis.from_url(b.redis.url, socket_timeout=60)
    store = Store(redis)
    saved = redis.config_get("slowlog-*")
    redis.config_set("slowlog-log-slower-than", 1000)
    redis.config_set("slowlog-max-len", 100_000)
    try:
        create(b.service, WORST)
        batches = worst_batches(WORST, BIG, defaults.max_id_length, defaults.max_body_bytes)
        mark = _last_slowlog_id(redis)
        baseline = processed(store, [WORST])
        accepted, _ = send_batches(b.service.url, store, batches, threads=2)
        wait_applied(store, [WORST], baseline, accepted, timeout=300)
        charted = wait_charts(store, [WORST], timeout=120)
        ms, what = _slowest(redis, mark)
        r.add(
            s,
            f"build: {accepted:,} updates in {len(batches)} POSTs; longest call",
            f"{ms:,.1f} ms ({what})",
        )
        mark, before = _last_slowlog_id(redis), stats(store)
        version = redis.hget(meta_key(WORST), "version")
        workid = batches[0][0]["workid"]
        answer = b.service.get("update", jobid=WORST, workid=workid, current=77, total=100)
        answer.raise_for_status()
        deadline = time.monotonic() + 120
        while redis.hget(meta_key(WORST), "version") == version and time.monotonic() < deadline:
            time.sleep(0.01)
        charted = wait_charts(store, [WORST], timeout=120) and charted
        ms, what = _slowest(redis, mark)
        r.add(
            s,
            "update + render: longest Redis call",
            f"{ms:,.1f} ms ({what})",
            f"<= {MOST_CALL_MS} ms",
            judge(ms, at_most=MOST_CALL_MS),
        )
        r.note(f"S7 worst job, after one update: {activity(before, stats(store), 1)}")
        if not charted:
            r.note("S7 worst job: its chart did not settle (renders failing?)")
        mark = _last_slowlog_id(redis)
        b.service.get("delete", jobid=WORST).raise_for_status()
        ms, what = _slowest(redis, mark)
        r.add(s, "delete: longest Redis call", f"{ms:,.1f} ms ({what})")
    finally:
        for name, value in saved.items():
            redis.config_set(name, value)


def big_updates_script(jobid: str, workers: int) -> str:
    """GET /progress/update to workers w0..w(n-1) of one job in turn, keeping each worker's
    failed flag (i % 100 == 7), `current` moving on each cycle."""
    return (
        _THREADS
        + f"""
local job, workers = {json.dumps(jobid)}, {workers}
local n = 0
function init(args) n = (tid or 0) * 7919 end
function request()
  local w = n % workers
  local round = math.floor(n / workers) + 1
  n = n + 1
  local ok = 1
  if w % {FAILED_EVERY} == 7 then ok = 0 end
  return wrk.format("GET", string.format(
    "/progress/update?jobid=%s&workid=w%d&current=%d&total=100&ok=%d",
    job, w, (w + round) % 101, ok))
end
"""
        + _DONE
    )


def _probe_rows(r, s: str, results: list, what: str, target: float | None) -> float:
    """Rows for a run of probes, labelled `what`; returns the p95 (inf if any timed out)."""
    visible = [p.visible_s if p.visible_s is not None else math.inf for p in results]
    applied = [p.applied_s for p in results if p.applied_s is not None]
    p50, p95 = _quantile(visible, 0.5), _quantile(visible, 0.95)
    r.add(s, f"{what} update-to-visible p50 ({len(results)} probes)", num(p50, 2, " s"))
    r.add(
        s,
        f"{what} update-to-visible p95",
        num(p95, 2, " s"),
        f"<= {target:g} s" if target else "",
        judge(p95, at_most=target) if target else "",
    )
    if applied:
        r.add(
            s,
            f"{what} 2xx -> applied in Redis p50 / p95",
            f"{statistics.median(applied):.3f} / {_quantile(applied, 0.95):.3f} s",
        )
    return p95


def section_big_latency(b) -> None:
    s, r, st = "7 big update-to-visible", b.report, _state(b)
    if not st.ok:
        raise RuntimeError("the big jobs were not built")
    background = Wrk(
        f"{b.service.url}/progress/update",
        big_updates_script(st.big, BIG - 1),
        connections=4,
        seconds=120,
        threads=1,
    )
    try:
        time.sleep(1)
        meter = b.cpu()
        results = probes.run_probes(b.service.url, b.store, st.big, count=20)
        cpu = describe(meter.percent())
    finally:
        background.interrupt()
        load = background.result()
    _probe_rows(r, s, results, f"{BIG:,}-worker job:", 1.5)
    r.add(s, "background updates/s (4 conns, single GET)", num(load.ok_per_s))
    errors = [p.error for p in results if p.error]
    r.note(
        f"S7 update-to-visible on {st.big}: background {load.ok_per_s:,.0f} updates/s, non-2xx "
        f"{load.non_2xx}; probe latencies (s): "
        f"{', '.join('-' if p.visible_s is None else f'{p.visible_s:.2f}' for p in results)}"
        f"{'; errors: ' + ', '.join(errors) if errors else ''}; CPU: {cpu}; "
        f"load avg {load_average()}"
    )


def section_big_listing(b) -> None:
    s, r, st = "7 big job listing", b.report, _state(b)
    if not st.ok:
        raise RuntimeError("the big jobs were not built")
    listing = b.service.get("jobs", limit=20).json()
    sizes = [j["workers"] for j in listing["jobs"]]
    path = "/progress/jobs?limit=20"
    times = _read_times(b.service.url, [path], READS)[path]
    med, p95 = statistics.median(times), _quantile(times, 0.95)
    r.add(
        s,
        f"GET /progress/jobs?limit=20, {sizes.count(BIG)} of 20 jobs x {BIG:,}: median ms",
        f"{med:.1f}",
        "< 20 ms",
        judge(med, at_most=19.999),
    )
    r.add(s, "  p95 ms", f"{p95:.1f}", "< 20 ms", judge(p95, at_most=19.999))
    meter = b.cpu()
    load = run_wrk(b.service.url + path, static_script({}), 8, 4)
    cpu = describe(meter.percent())
    r.add(s, "  req/s (wrk 8 conns, 4 s)", num(load.ok_per_s))
    r.note(
        f"S7 /progress/jobs: {READS} sequential requests, max {max(times):.1f} ms; listed "
        f"{len(sizes)} jobs, total {listing['total']:,}; wrk p50/p99 {load.p50_ms:.1f}/"
        f"{load.p99_ms:.1f} ms, non-2xx {load.non_2xx}; CPU: {cpu}; load avg {load_average()}"
    )


# -- 8: create flood ---------------------------------------------------------------------------


def flood_script(prefix: str) -> str:
    """GET /progress/create with a new job id each time (prefix-thread-n), counting the answers
    by status in every thread; done() adds them to the result line."""
    return f"""
local threads = {{}}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
s200, s429, s503, sother = 0, 0, 0, 0
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", string.format(
    "/progress/create?jobid={prefix}-%d-%d&maxage=3600", tid, n))
end
function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  else sother = sother + 1 end
end
function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s200"); b = b + t:get("s429"); c = c + t:get("s503"); d = d + t:get("sother")
  end
  local e = summary.errors
  io.write(string.format('BENCH {{"requests":%d,"duration_us":%d,"bytes":%d,"status":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,'
    .. '"max_us":%d,"s200":%d,"s429":%d,"s503":%d,"sother":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, a, b, c, d))
end
"""


def web_pids(b) -> set[int]:
    """The web supervisor and its server processes."""
    root = b.service.procs["web"].pid
    return {root} | {pid for pid, (ppid, _) in _stats().items() if ppid == root}


@dataclass
class Phase:
    label: str
    updates: object  # WrkResult of the update load
    flood: object | None  # WrkResult of the create flood
    probes: list
    cpu: str
    web_survived: bool
    jobs_created: int


def _phase(b, label: str, flood_prefix: str | None, seconds: float) -> Phase:
    url = b.service.url
    pids = web_pids(b)
    jobs0 = b.store.redis.zcard(RECENT)
    meter = b.cpu()
    updates = Wrk(
        f"{url}/progress/update",
        single_updates_script([HOSTILE_JOB], 999),
        connections=4,
        seconds=seconds,
        threads=1,
    )
    flood = None
    if flood_prefix:
        flood = Wrk(f"{url}/progress/create", flood_script(flood_prefix), 50, seconds, threads=2)
    t0 = time.monotonic()
    results, etag = [], None
    rng = random.Random(2)
    try:
        with requests.Session() as session:
            i = 0
            while time.monotonic() - t0 < seconds - 1.5:
                time.sleep(rng.uniform(0.25, 1.25))  # one render interval wide (see probes)
                i += 1
                probe, etag = probes.probe_once(
                    session, url, b.store, HOSTILE_JOB, 10_000 + i, etag, timeout=10
                )
                results.append(probe)
    finally:
        flood_result = flood.result() if flood else None
        updates.interrupt()
        update_result = updates.result()
    cpu = describe(meter.percent())
    alive = b.service.procs["web"].poll() is None and web_pids(b) == pids
    return Phase(
        label,
        update_result,
        flood_result,
        results,
        cpu,
        alive,
        b.store.redis.zcard(RECENT) - jobs0,
    )


def _restart_web(b, env: dict[str, str]) -> None:
    """Restart the bench service's web process (by its PID) with these settings changed
    (a value of None: back to the default)."""
    b.service.kill("web", signal.SIGTERM)
    for key, value in env.items():
        if value is None:
            b.service.env.pop(key, None)
        else:
            b.service.env[key] = value
    b.service.start("web")


def section_flood(b) -> None:
    s, r = "8 create flood", b.report
    seconds = b.seconds
    build(b, [(HOSTILE_JOB, 1000)])
    phases = [_phase(b, "no flood", None, seconds)]
    phases.append(_phase(b, "flood, default create limit", "flood-limited", seconds))
    unlimited = {"PROGRESS_CREATE_RATE_LIMIT": "0", "PROGRESS_MAX_JOBS": "100000"}
    _restart_web(b, unlimited)
    try:
        phases.append(_phase(b, "flood, PROGRESS_CREATE_RATE_LIMIT=0", "flood-open", seconds))
    finally:
        _restart_web(b, dict.fromkeys(unlimited))
    base = phases[0]
    for ph in phases:
        u = ph.updates
        tag = ph.label
        r.add(
            s,
            f"[{tag}] updates/s (4 conns), p50 / p95 / p99 ms",
            f"{u.ok_per_s:,.0f}; {u.p50_ms:.1f} / {u.p95_ms:.1f} / {u.p99_ms:.1f}",
        )
        r.add(
            s,
            f"[{tag}] update non-2xx / socket errors",
            f"{u.non_2xx} / {u.socket_errors}",
            "0",
            judge(-(u.non_2xx + u.socket_errors), at_least=0),
        )
        _probe_rows(r, s, ph.probes, f"[{tag}]", 1.5)
        if ph is not base:
            ratio = u.p95_ms / base.updates.p95_ms if base.updates.p95_ms else None
            r.add(s, f"[{tag}] update p95 / without flood", num(ratio, 1, " x"))
        if ph.flood:
            f = ph.flood
            raw = f.raw
            r.add(
                s,
                f"[{tag}] creates answered/s (50 conns, {f.seconds:.0f} s)",
                f"{f.requests / f.seconds:,.0f}",
            )
            r.add(
                s,
                f"[{tag}] create answers 200 / 429 / 503 / other / socket errors",
                f"{raw.get('s200', 0):,} / {raw.get('s429', 0):,} / {raw.get('s503', 0):,} / "
                f"{raw.get('sother', 0):,} / {f.socket_errors}",
            )
            r.add(s, f"[{tag}] create p50 / p99 ms", f"{f.p50_ms:.1f} / {f.p99_ms:.1f}")
        r.add(
            s,
            f"[{tag}] web processes all alive (same PIDs)",
            "yes" if ph.web_survived else "NO",
            "yes",
            "PASS" if ph.web_survived else "MISS",
        )
        r.note(
            f"S8 [{tag}]: jobs created {ph.jobs_created:,}; probe latencies (s): "
            f"{', '.join('-' if p.visible_s is None else f'{p.visible_s:.2f}' for p in ph.probes)}"
            f"; errors: {[p.error for p in ph.probes if p.error] or 'none'}; CPU: {ph.cpu}"
        )
    log = b.service.log("web")
    exited = log.count("event=web_process_exited") + log.count("event=web_process_failed")
    r.add(
        s,
        "web.log: server processes exited or failed",
        str(exited),
        "0",
        judge(-exited, at_least=0),
    )
    r.note(f"S8 done; load avg {load_average()}")


SECTIONS = (
    section_big_reads,
    section_big_render,
    section_worst_render,
    section_big_latency,
    section_big_listing,
    section_flood,
)
LABELS = {
    "section_big_reads": "7 big job reads",
    "section_big_render": "7 big render",
    "section_worst_render": "7 worst-job render",
    "section_big_latency": "7 big update-to-visible",
    "section_big_listing": "7 big job listing",
    "section_flood": "8 create flood",
}
