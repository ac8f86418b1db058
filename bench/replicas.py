"""Section 10 of `make bench`: what PROGRESS_MIN_REPLICAS=1 costs the ingest path.

For N = 0 then N = 1: a fresh master with one replica (`--replicaof`, on loopback) and a service
started on it from the Procfile with PROGRESS_MIN_REPLICAS=N, once /readyz answers 200 (every
worker consuming): single updates (wrk,
GET /progress/update, as section 1) then JSON batches (as section 3), each for SECONDS. Per run:
the accepted rate, wrk's p50 / p99, the non-2xx count (with N=1, a 503 is a write WAIT did not see
on the replica within PROGRESS_MIN_REPLICAS_TIMEOUT), and the master's own CPU (INFO cpu,
used_cpu_sys + used_cpu_user) per accepted update: over the load, and until ingest has applied
what it accepted. The processes are started and stopped inside the section, by their PIDs, so the
other sections' service and Redis never see them."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

from bench.cpu import CpuMeter, describe
from bench.loads import WrkResult, batch_updates_script, run_wrk, single_updates_script
from bench.pipeline import create_jobs, processed, wait_applied
from bench.report import Report, judge, load_average, num
from tasks.store import Store
from tests.harness import RedisServer, Service, _linked, wait_until

LABEL = "10 replicas"
SECONDS = 6.0  # per load: shorter than sections 1 and 3, four loads in all
JOBS = [f"repl{i}" for i in range(7)]
WORKERS = 1000


@dataclass(frozen=True)
class Shape:
    """One of the two loads: its wrk script, connections, and updates per request."""

    name: str
    script: str
    connections: int
    per_request: int


SHAPES = (
    Shape("single", single_updates_script(JOBS, WORKERS), 32, 1),
    Shape("batched", batch_updates_script(JOBS, WORKERS, 1000), 8, 1000),
)


@dataclass(frozen=True)
class Measured:
    load: WrkResult
    accepted: int  # updates in 2xx answers
    processed: int  # rows ingest applied (with N=1 a 503'd write is applied too)
    drain_s: float | None  # from the load's end to the last applied; None: timed out
    cpu_load_s: float  # the master's CPU seconds during the load
    cpu_applied_s: float  # ... from the load's start until what it accepted was applied
    cpu: str  # every process's share during the load

    @property
    def rate(self) -> float:
        return self.accepted / self.load.seconds

    def us_per_update(self, seconds: float) -> str:
        return num(1e6 * seconds / self.accepted if self.accepted else None, 1)


def redis_cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measure(service: Service, store: Store, shape: Shape, seconds: float, roots) -> Measured:
    baseline = processed(store, JOBS)
    meter = CpuMeter(roots)
    cpu0 = redis_cpu_seconds(store.redis)
    load = run_wrk(f"{service.url}/progress/update", shape.script, shape.connections, seconds)
    cpu_load, t_end = redis_cpu_seconds(store.redis) - cpu0, time.monotonic()
    cpu = describe(meter.percent())
    accepted = load.ok * shape.per_request
    applied = wait_applied(store, JOBS, baseline, accepted)
    return Measured(
        load,
        accepted,
        applied.processed,
        applied.at - t_end if applied.at else None,
        cpu_load,
        redis_cpu_seconds(store.redis) - cpu0,
        cpu,
    )


def _ready(service: Service) -> bool:
    """/readyz: every worker has been seen consuming (their start-up is over)."""
    return requests.get(f"{service.url}/readyz", timeout=5).status_code == 200


def run_service(workdir: Path, n: int, seconds: float):
    """A master and its replica of their own, a service started on them with
    PROGRESS_MIN_REPLICAS=n, both loads; everything stopped after, by PID."""
    with ExitStack() as stack:
        master = RedisServer(workdir / "master", unix_socket=True)
        stack.callback(master.stop)
        master.start()
        replica = RedisServer(
            workdir / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port))
        )
        stack.callback(replica.stop)
        replica.start()
        wait_until(lambda: _linked(replica.client()), 20, what="the replica's link to be up")
        service = Service(master.url, workdir / "service", env={"PROGRESS_MIN_REPLICAS": str(n)})
        stack.callback(service.stop)
        service.start()
        store = Store(master.client())
        wait_until(lambda: _ready(service), 30, interval=0.5, what="/readyz to answer 200")
        create_jobs(service, JOBS)
        roots = {name: p.pid for name, p in service.procs.items()}
        roots.update(master=master.proc.pid, replica=replica.proc.pid)
        results = {s.name: measure(service, store, s, seconds, roots) for s in SHAPES}
        linked = master.client().info("replication")["connected_slaves"]
        tracebacks = {k: service.log(k).count("Traceback") for k in service.procs}
    return results, linked, {k: v for k, v in tracebacks.items() if v}


def add_rows(report: Report, name: str, shape: Shape, m: Measured, strict: bool) -> None:
    """One load's rows; `strict`: errors are judged (N=0), else reported (N=1 may 503)."""
    s = LABEL
    conns = f"{shape.connections} conns" + (
        f" x {shape.per_request:,}/body" if shape.per_request > 1 else ""
    )
    unit = "updates/s" if shape.per_request > 1 else "req/s"
    report.add(s, f"{name}: accepted {unit} ({conns})", num(m.rate))
    report.add(s, f"{name}: p50 / p99 (ms)", f"{m.load.p50_ms:.1f} / {m.load.p99_ms:.1f}")
    errors = f"{m.load.non_2xx} / {m.load.socket_errors}"
    bad = m.load.non_2xx + m.load.socket_errors
    if strict:
        report.add(s, f"{name}: non-2xx / socket errors", errors, "0", judge(-bad, at_least=0))
    else:
        report.add(s, f"{name}: non-2xx (503: WAIT timed out) / socket errors", errors)
    report.add(
        s,
        f"{name}: master CPU per update, load / to applied (us)",
        f"{m.us_per_update(m.cpu_load_s)} / {m.us_per_update(m.cpu_applied_s)}",
    )
    drained = "TIMED OUT" if m.drain_s is None else f"{m.drain_s:.2f} s after the load"
    report.note(
        f"S10 {name}: {m.load.requests:,} requests in {m.load.seconds:.1f} s, "
        f"{m.accepted:,} updates accepted, {m.processed:,} processed (last {drained}); "
        f"master CPU {m.cpu_load_s:.2f} s during the load, {m.cpu_applied_s:.2f} s to "
        f"applied; CPU during load: {m.cpu}"
    )


def section_replicas(report: Report, workdir: Path, seconds: float) -> None:
    seconds = min(SECONDS, seconds)
    runs = {n: run_service(workdir / f"replicas-{n}", n, seconds) for n in (0, 1)}
    for n, (results, linked, tracebacks) in runs.items():
        for shape in SHAPES:
            add_rows(report, f"N={n} {shape.name}", shape, results[shape.name], strict=n == 0)
        report.note(
            f"S10 N={n}: the master had {linked} replica(s) linked after the loads"
            + (f"; tracebacks in logs: {tracebacks}" if tracebacks else "")
        )
    for shape in SHAPES:
        before, after = runs[0][0][shape.name], runs[1][0][shape.name]
        ratio = after.rate / before.rate if before.rate else None
        p50 = after.load.p50_ms / before.load.p50_ms if before.load.p50_ms else None
        report.add(LABEL, f"{shape.name}: accepted rate N=1 / N=0", num(ratio, 2, " x"))
        report.add(LABEL, f"{shape.name}: p50 latency N=1 / N=0", num(p50, 2, " x"))
    report.note(
        f"S10: for each N a fresh master + 1 replica on loopback (and a fresh service); "
        f"{seconds:.0f} s per load; load avg {load_average()}"
    )


LABELS = {"section_replicas": LABEL}
