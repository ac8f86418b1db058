"""Section 11 of `make bench`: is the service fair to a well-behaved client while another one
abuses it?

A good client (from 127.0.0.1) sends single GET updates, each on a new connection as curl, the
MWA scripts and the CLI do, and probes chart latency: from an update's 2xx until
/progress/render serves a chart of a job version that includes it (seen through the API only:
status's `version`, the chart's ETag). It is measured for SECONDS alone, then while one abuse
runs (bench/fairness_abuse.py, from 127.0.0.2), abuse by abuse, in one run:

a) one job of 100,000 workers with 256-character ids, built by POSTed batches, then updated
   every 0.3 s so that it is rendered again and again (the build is part of the abuse, and
   what follows it lasts 2 x SECONDS: a probe may take CHART_TIMEOUT there);
b) twelve clients looping on status?workers=all of a 10,000-worker job at the largest page;
c) 3,000 idle sockets, 50 of them sending a request's head slowly;
d) one address filling the storage caps (PROGRESS_MAX_JOBS and PROGRESS_MAX_WORKER_ROWS lowered
   for this service only), then the good client creates a secret-protected job and adds a
   worker to it.

(a)-(c) share one service (a last: it may leave the render worker busy); (d) has its own. Both
are started here, on a Redis of their own, and stopped by PID. Every other setting keeps its
default, so the section measures whatever limits the code has."""

from __future__ import annotations

import http.client
import math
import random
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import redis
import requests

from bench.fairness_abuse import ATTACKER, Attack, Client, worker_rows
from bench.probes import etag_version
from bench.report import Report, judge, load_average, num
from tasks.store import Store
from tests.harness import RedisServer, Service, wait_until

LABEL = "11 fairness"
GOOD = "127.0.0.1"
GOOD_JOB, CHART_JOB = "good", "good-chart"
GOOD_WORKERS = 10
UPDATE_EVERY = 0.05  # the good client's pace: about 20 updates/s
IN_FLIGHT = 32  # updates it may have waiting for an answer at once
UPDATE_TIMEOUT = 10.0  # an update not answered by then counts as a timeout (wrk's --timeout)
CHART_TIMEOUT = 15.0  # a probe whose chart is not current by then counts as never
UPDATE_P99_MS = 1000  # targets under abuse: the "under 1 s" for a new connection
CHART_P50_S = 1.5  # section 4's update-to-visible target
SLOWEST_REDIS_MS = 50  # the bound on any one Redis call of the service
# (d): caps low enough for one address to fill them in seconds
CAPS = {"PROGRESS_MAX_JOBS": "40", "PROGRESS_MAX_WORKER_ROWS": "20000"}
FILL_BATCH = 5_000


# -- the good client ---------------------------------------------------------------------------


@dataclass
class Observed:
    update_ms: list[float] = field(default_factory=list)  # each attempt, until answer or give-up
    updates: Counter = field(default_factory=Counter)  # by status; "timeout", error names
    chart_s: list[float] = field(default_factory=list)  # inf: not current within CHART_TIMEOUT
    chart_errors: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.updates.items() if not status.startswith("2"))

    def error_text(self) -> str:
        bad = {k: v for k, v in sorted(self.updates.items()) if not k.startswith("2")}
        bad.update({f"chart {k}": v for k, v in sorted(self.chart_errors.items())})
        return ", ".join(f"{k} x{v}" for k, v in bad.items()) or "none"


def new_connection_get(base: str, path: str, timeout: float = UPDATE_TIMEOUT) -> tuple[str, float]:
    """One GET on a connection of its own from GOOD; (status or error name, seconds)."""
    parts = urlsplit(base)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=timeout, source_address=(GOOD, 0)
    )
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        status = str(response.status)
    except TimeoutError:
        status = "timeout"
    except (OSError, http.client.HTTPException) as exc:
        status = type(exc).__name__
    finally:
        conn.close()
    return status, time.monotonic() - t0


def update_path(jobid: str, workid: str, current: int) -> str:
    query = {"jobid": jobid, "workid": workid, "current": current, "total": 1_000_000}
    return f"/progress/update?{urlencode(query)}"


class GoodClient:
    """Two threads: updates to GOOD_JOB's workers in turn, and chart probes on CHART_JOB (the
    only updates it gets, so its version moves only with them)."""

    def __init__(self, base: str, round_: int) -> None:
        self.base, self.round = base, round_ * 1_000_000  # `current` keeps growing run to run
        self.seen = Observed()
        self.stop_event, self.lock = threading.Event(), threading.Lock()
        self.threads = [threading.Thread(target=f) for f in (self._updates, self._probes)]

    def start(self) -> GoodClient:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> Observed:
        self.stop_event.set()
        for t in self.threads:
            t.join()
        return self.seen

    def _update(self, jobid: str, workid: str, current: int) -> str:
        status, seconds = new_connection_get(self.base, update_path(jobid, workid, current))
        with self.lock:
            self.seen.update_ms.append(seconds * 1000)
            self.seen.updates[status] += 1
        return status

    def _updates(self) -> None:
        """One update every UPDATE_EVERY, each sent whether or not the last was answered (many
        independent workers, as a job's are), at most IN_FLIGHT waiting at once: a stalled
        service is then sampled all along, not once per timeout."""
        slots, n = threading.Semaphore(IN_FLIGHT), 0

        def send(workid: str, current: int) -> None:
            try:
                self._update(GOOD_JOB, workid, current)
            finally:
                slots.release()

        sent = []
        while not self.stop_event.is_set():
            n += 1
            slots.acquire()
            t = threading.Thread(target=send, args=(f"w{n % GOOD_WORKERS}", self.round + n))
            t.start()
            sent.append(t)
            self.stop_event.wait(UPDATE_EVERY)
        for t in sent:  # those still waiting are answered (or time out) within UPDATE_TIMEOUT
            t.join()

    def _probes(self) -> None:
        rng, n, etag = random.Random(4), 0, None
        with requests.Session() as session:  # the show page's reads: one keep-alive connection
            while not self.stop_event.wait(rng.uniform(0.25, 1.25)):  # see bench/probes.py
                n += 1
                try:
                    etag = self._probe(session, self.round + n, etag)
                except (requests.RequestException, ValueError) as exc:
                    self.seen.chart_errors[type(exc).__name__] += 1
                    self.seen.chart_s.append(math.inf)  # no chart reached the user

    def _version(self, session: requests.Session) -> int | None:
        r = session.get(
            f"{self.base}/progress/status",
            params={"jobid": CHART_JOB, "workers": "none"},
            timeout=UPDATE_TIMEOUT,
        )
        return r.json()["version"] if r.status_code == 200 else None

    def _probe(self, session: requests.Session, current: int, etag: str | None) -> str | None:
        before = self._version(session)
        if before is None:
            self.seen.chart_errors["status refused"] += 1
            return etag
        status = self._update(CHART_JOB, "probe", current)
        t0 = time.monotonic()
        if not status.startswith("2"):
            return etag
        deadline = t0 + CHART_TIMEOUT
        version = before
        while version is None or version <= before:  # until our update is applied
            if time.monotonic() > deadline or self.stop_event.is_set():
                return self._give_up(etag)
            time.sleep(0.01)
            version = self._version(session)
        while etag_version(etag) < version:  # until the chart drawn from it is served
            if time.monotonic() > deadline or self.stop_event.is_set():
                return self._give_up(etag)
            headers = {"If-None-Match": etag} if etag else {}
            r = session.get(
                f"{self.base}/progress/render",
                params={"jobid": CHART_JOB},
                headers=headers,
                timeout=UPDATE_TIMEOUT,
            )
            if r.status_code in (200, 304):
                etag = r.headers.get("ETag", etag)
            if etag_version(etag) < version:
                time.sleep(0.01)
        self.seen.chart_s.append(time.monotonic() - t0)
        return etag

    def _give_up(self, etag):
        if not self.stop_event.is_set():  # a probe cut short by the phase's end is not counted
            self.seen.chart_s.append(math.inf)
        return etag


def run_good(base: str, round_: int, seconds: float) -> Observed:
    client = GoodClient(base, round_).start()
    time.sleep(seconds)
    return client.stop()


# -- figures -----------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms(value: float | None) -> str:
    return num(value, 0 if value and value >= 100 else 1)


def _s(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "never" if math.isinf(value) else f"{value:.2f}"


def _ratio(under: float | None, base: float | None) -> float | None:
    if under is None or not base:
        return None
    return math.inf if math.isinf(under) else under / base


def _x(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:,.1f} x"


def compare(r: Report, what: str, base: Observed, under: Observed) -> None:
    """The rows for one abuse: update p50 / p99 and chart latency, baseline -> under abuse, their
    ratios, and the errors the good client saw."""
    s = LABEL
    b50, b99 = quantile(base.update_ms, 0.5), quantile(base.update_ms, 0.99)
    u50, u99 = quantile(under.update_ms, 0.5), quantile(under.update_ms, 0.99)
    r.add(
        s,
        f"{what}: update p50 / p99 ms, alone -> under abuse",
        f"{_ms(b50)} / {_ms(b99)} -> {_ms(u50)} / {_ms(u99)}",
    )
    ratio = _ratio(u99, b99)
    r.add(
        s,
        f"{what}: update p50 / p99 under abuse / alone",
        f"{_x(_ratio(u50, b50))} / {_x(ratio)}",
        f"p99 <= {UPDATE_P99_MS} ms",
        judge(u99, at_most=UPDATE_P99_MS),
    )
    c50, cmax = quantile(base.chart_s, 0.5), quantile(base.chart_s, 1)
    d50, dmax = quantile(under.chart_s, 0.5), quantile(under.chart_s, 1)
    r.add(
        s,
        f"{what}: chart latency p50 / max s ({len(base.chart_s)} / {len(under.chart_s)} probes)",
        f"{_s(c50)} / {_s(cmax)} -> {_s(d50)} / {_s(dmax)}",
    )
    r.add(
        s,
        f"{what}: chart latency p50 under abuse / alone",
        _x(_ratio(d50, c50)),
        f"p50 <= {CHART_P50_S:g} s",
        judge(None if d50 is None or math.isinf(d50) else d50, at_most=CHART_P50_S),
    )
    total = len(under.update_ms)
    r.add(
        s,
        f"{what}: good updates failed, alone / under abuse",
        f"{base.errors} of {len(base.update_ms)} / {under.errors} of {total}",
        "0",
        judge(-under.errors, at_least=0),
    )
    r.note(
        f"S11 {what}: good client errors alone: {base.error_text()}; under abuse: "
        f"{under.error_text()}; chart latencies (s) under abuse: "
        f"{', '.join(_s(v) for v in under.chart_s) or 'none'}"
    )


# -- services ----------------------------------------------------------------------------------


def _ready(service: Service) -> bool:
    try:
        return requests.get(f"{service.url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def start_service(stack: ExitStack, workdir: Path, env: dict[str, str] | None = None):
    """A Redis and a service of their own; the bench's Redis client waits long (a script of the
    service's may hold Redis for seconds here)."""
    server = RedisServer(workdir / "redis", unix_socket=True)
    stack.callback(server.stop)
    server.start()
    service = Service(server.url, workdir / "service", env=env)
    stack.callback(service.stop)
    service.start()
    wait_until(lambda: _ready(service), 60, interval=0.5, what="/readyz to answer 200")
    return service, Store(redis.Redis.from_url(server.url, socket_timeout=60))


def slowest(store: Store) -> tuple[float, str] | None:
    """The longest command in Redis's slowlog (ms, its name) since the last call; None if none
    took 10 ms (the slowlog's default threshold)."""
    entries = store.redis.slowlog_get(128)
    store.redis.slowlog_reset()
    if not entries:
        return None
    top = max(entries, key=lambda e: e["duration"])
    command = top["command"]
    name = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
    return top["duration"] / 1000, name.split(" ")[0]


def slowlog_row(r: Report, what: str, top: tuple[float, str] | None) -> None:
    ms = top[0] if top else 0.0
    r.add(
        LABEL,
        f"{what}: longest Redis command meanwhile (SLOWLOG)",
        f"{ms:,.0f} ms ({top[1]})" if top else "< 10 ms",
        f"<= {SLOWEST_REDIS_MS} ms",
        judge(ms, at_most=SLOWEST_REDIS_MS),
    )


def good_jobs(service: Service) -> None:
    """The good client's two jobs, each with its workers known."""
    for jobid in (GOOD_JOB, CHART_JOB):
        service.get("create", jobid=jobid, desc="the well-behaved client").raise_for_status()
    for i in range(GOOD_WORKERS):
        service.get("update", jobid=GOOD_JOB, workid=f"w{i}", current=0, total=1).raise_for_status()
    service.get("update", jobid=CHART_JOB, workid="probe", current=0, total=1).raise_for_status()


def host_port(service: Service) -> tuple[str, int]:
    parts = urlsplit(service.url)
    return parts.hostname, parts.port


def abuse(r: Report, service, store, name: str, what: str, seconds: float, n: int) -> dict:
    """The good client alone, then from the abuse's start (once set up) until SECONDS after it
    is at full force; the attacker's own account, for the notes."""
    base = run_good(service.url, 2 * n, seconds)
    slowest(store)
    attack = Attack(name, *host_port(service)).start()
    try:
        if not attack.ready.wait(180):
            r.note(f"S11 {what}: the abuse was not set up within 180 s")
        good = GoodClient(service.url, 2 * n + 1).start()
        try:
            if not attack.settled.wait(180):
                r.note(f"S11 {what}: the abuse was not at full force within 180 s")
            time.sleep(seconds)
        finally:
            under = good.stop()
    finally:
        done = attack.stop()
    compare(r, what, base, under)
    slowlog_row(r, what, slowest(store))
    return done


def tracebacks(service: Service) -> str:
    """Each process's tracebacks, by their last line (the exception)."""
    parts = []
    for name in ("web", "ingest", "render", "beat"):
        lines, seen = service.log(name).splitlines(), Counter()
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                last = next((x for x in lines[i + 1 :] if x and not x[0].isspace()), "?")
                seen[last[:120]] += 1
        parts += [f"{name}: {n} x {last}" for last, n in seen.items()]
    return "; ".join(parts) or "no tracebacks"


def _counts(c) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(dict(c).items())) or "none"


def shared_abuses(r: Report, workdir: Path, seconds: float) -> None:
    with ExitStack() as stack:
        service, store = start_service(stack, workdir / "shared")
        good_jobs(service)
        out = abuse(r, service, store, "status_readers", "b) 12 status readers", seconds, 0)
        r.note(
            f"S11 b) attacker: job built with {out.get('build', {}).get('accepted', 0):,} workers "
            f"(reported {out.get('reported')}); page limit {out.get('limit')}; reads by status "
            f"{_counts(out.get('reads', {}))}; {out.get('bytes', 0) / 2**20:,.0f} MiB read in "
            f"{out.get('read_s', 0):.0f} s{'; ERROR ' + out['error'] if 'error' in out else ''}"
        )
        out = abuse(r, service, store, "idle_sockets", "c) 3,000 idle sockets", seconds, 1)
        r.note(
            f"S11 c) attacker: {out.get('connected')} of 3,000 sockets connected; reopened after "
            f"the server closed them {out.get('reopened')}; slow header lines sent "
            f"{out.get('slow_lines')}{'; ERROR ' + out['error'] if 'error' in out else ''}"
        )
        # the huge job last: its renders may keep the render worker busy long after
        out = abuse(r, service, store, "huge_job", "a) one huge job", 2 * seconds, 2)
        build = out.get("build", {})
        r.note(
            f"S11 a) attacker: create {out.get('create')}; {build.get('accepted', 0):,} workers "
            f"accepted in {build.get('posts', 0)} POSTs ({_counts(build.get('statuses', {}))}) in "
            f"{out.get('build_s', 0):.1f} s{'; gave up: refused' if build.get('gave_up') else ''}"
            f"; re-render updates {out.get('rerender_updates', 0)} "
            f"({_counts(out.get('rerender_statuses', {}))})"
            f"{'; ERROR ' + out['error'] if 'error' in out else ''}; load avg {load_average()}"
        )
        r.note(f"S11 a)-c) service logs: {tracebacks(service)}")


# -- (d) storage caps ------------------------------------------------------------------------


def fill_caps(service: Service, store: Store) -> dict:
    """As ATTACKER: create jobs until refused, then give them new workers until refused (both
    bounded by the caps); wait until ingest has applied what was accepted."""
    host, port = host_port(service)
    client = Client(host, port)
    jobs, creates = [], Counter()
    for i in range(int(CAPS["PROGRESS_MAX_JOBS"]) + 10):
        status, _ = client.get("create", jobid=f"fill{i:03d}", desc="filler", maxage=366 * 86400)
        creates[str(status)] += 1
        if status != 200:
            break
        jobs.append(f"fill{i:03d}")
    rows_cap, posts, accepted = int(CAPS["PROGRESS_MAX_WORKER_ROWS"]), Counter(), 0
    for k in range(rows_cap // FILL_BATCH + 5):
        if not jobs:
            break
        jobid = jobs[k % len(jobs)]
        rows = worker_rows(jobid, (f"r{k}-{i}" for i in range(FILL_BATCH)))
        status, _ = client.post_json(rows)
        posts[str(status)] += 1
        if not 200 <= status < 300:
            break
        accepted += FILL_BATCH
    client.close()
    wait_until(lambda: store.pending_updates() == 0, 60, interval=0.2, what="ingest to catch up")
    return {"jobs": len(jobs), "creates": creates, "rows": accepted, "posts": posts}


def section_caps(r: Report, workdir: Path, seconds: float) -> None:
    what = "d) storage caps filled"
    with ExitStack() as stack:
        service, store = start_service(stack, workdir / "caps", env=CAPS)
        good_jobs(service)
        base = run_good(service.url, 10, seconds)
        slowest(store)
        filled = fill_caps(service, store)
        secret = {"secret": "good-client-secret"}
        path = f"/progress/create?{urlencode({'jobid': 'good-secret', **secret})}"
        created, create_s = new_connection_get(service.url, path)
        query = {"jobid": "good-secret", "workid": "w0", "current": 1, "total": 10, **secret}
        added, add_s = new_connection_get(service.url, f"/progress/update?{urlencode(query)}")
        under = run_good(service.url, 11, seconds)
        logs, top = tracebacks(service), slowest(store)
    compare(r, what, base, under)
    slowlog_row(r, what, top)
    ok = created.startswith("2") and added.startswith("2")
    r.add(
        LABEL,
        f"{what}: good client's secret job: create / first worker (ms)",
        f"{created} / {added} ({create_s * 1000:,.0f} / {add_s * 1000:,.0f})",
        "2xx / 2xx",
        "PASS" if ok else "MISS",
    )
    r.note(
        f"S11 d) attacker ({ATTACKER}) with {', '.join(f'{k}={v}' for k, v in CAPS.items())}: "
        f"{filled['jobs']} jobs (creates {_counts(filled['creates'])}), {filled['rows']:,} worker "
        f"rows (POSTs {_counts(filled['posts'])}); service logs: {logs}; load avg {load_average()}"
    )


def section_fairness(r: Report, workdir: Path, seconds: float) -> None:
    r.note(f"S11: good client {GOOD}, attacker {ATTACKER}; {seconds:g} s alone, then under abuse")
    shared_abuses(r, workdir / "fairness", seconds)
    section_caps(r, workdir / "fairness", seconds)


LABELS = {"section_fairness": LABEL}
