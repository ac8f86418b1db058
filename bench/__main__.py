"""`make bench`: start the service from the Procfile on loopback (throwaway Redis, temp dirs),
drive it section by section with wrk, measure the references in the same run, and print one
table (also written to artifacts/bench.md). Every process started here is stopped by its PID."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import big_jobs, client_batching, fairness, memory, probes, replicas
from bench.cpu import CpuMeter, describe
from bench.loads import (
    Wrk,
    batch_updates_script,
    pushgateway_script,
    run_wrk,
    single_updates_script,
    static_script,
)
from bench.pipeline import (
    activity,
    batch_endpoint_works,
    create_jobs,
    processed,
    send_updates,
    stats,
    update_object,
    wait_applied,
    wait_charts,
    workers_key,
)
from bench.references import bare_app, pushgateway
from bench.report import Report, judge, load_average, machine, num
from tasks.settings import Settings
from tasks.store import Store
from tests.harness import ROOT, RedisServer, Service, wait_until

JOBS = [f"bench{i}" for i in range(7)]
WORKERS = 1000
CONNECTIONS = 32
BATCH_CONNECTIONS = 8
BATCH_SIZE = 1000


@dataclass
class Bench:
    report: Report
    service: Service
    redis: RedisServer
    store: Store
    workdir: Path
    seconds: float
    applied_rate: float | None = None  # section 1, our end-to-end single-update rate
    bare_rate: float | None = None
    batched: bool = False
    big: big_jobs.Built | None = None  # sections 7 and 8

    def cpu(self) -> CpuMeter:
        roots = {name: p.pid for name, p in self.service.procs.items()}
        return CpuMeter({**roots, "redis": self.redis.proc.pid})


def add_accounting(r, s, load, accepted: int, applied, rate, target: int) -> None:
    """The rows every ingest section reports: errors, the end-to-end rate, lost updates."""
    r.add(
        s,
        "non-2xx / socket errors",
        f"{load.non_2xx} / {load.socket_errors}",
        "0",
        judge(-(load.non_2xx + load.socket_errors), at_least=0),
    )
    r.add(
        s,
        "applied updates/s, end to end",
        num(rate),
        f">= {target:,}",
        judge(rate, at_least=target),
    )
    lost = max(0, accepted - applied.processed)
    r.add(s, "lost updates (accepted - processed)", f"{lost:,}", "0", judge(-lost, at_least=0))


def section_ingest(b: Bench) -> None:
    s, r = "1 ingest single", b.report
    create_jobs(b.service, JOBS)
    baseline, counters = processed(b.store, JOBS), stats(b.store)
    meter = b.cpu()
    t0 = time.monotonic()
    load = run_wrk(
        f"{b.service.url}/progress/update",
        single_updates_script(JOBS, WORKERS),
        CONNECTIONS,
        b.seconds,
    )
    t_end = time.monotonic()
    cpu = describe(meter.percent())
    applied = wait_applied(b.store, JOBS, baseline, load.ok)
    rate = load.ok / (applied.at - t0) if applied.at else None
    b.applied_rate = rate
    r.add(s, f"accepted req/s ({CONNECTIONS} conns, {load.seconds:.0f} s)", num(load.ok_per_s))
    r.add(s, "latency p50 / p99 (ms)", f"{load.p50_ms:.1f} / {load.p99_ms:.1f}")
    add_accounting(r, s, load, load.ok, applied, rate, target=3000)
    r.note(
        f"S1: {load.ok:,} accepted, {applied.processed:,} processed; last applied "
        f"{(applied.at or t_end) - t_end:.2f} s after the load ended"
        f"{'' if applied.at else ' (TIMED OUT)'}; CPU during load: {cpu}; CPU per update: web "
        f"{meter.ms_per('web', load.requests):.2f} ms, ingest "
        f"{meter.ms_per('ingest', applied.processed):.2f} ms; "
        f"{activity(counters, stats(b.store), applied.processed)}; load avg {load_average()}"
    )


def section_references(b: Bench) -> None:
    s, r = "2 references", b.report
    threads = Settings.from_env(b.service.env).web_threads
    with bare_app(threads, b.workdir) as (base, proc):
        meter = CpuMeter({"bare_app": proc.pid})
        load = run_wrk(
            f"{base}/progress/update", single_updates_script(JOBS, WORKERS), CONNECTIONS, b.seconds
        )
        cpu = describe(meter.percent())
    b.bare_rate = load.ok_per_s
    r.add(s, f"bare Falcon+waitress ({threads} threads) req/s", num(load.ok_per_s))
    r.add(s, "bare p50 / p99 (ms)", f"{load.p50_ms:.1f} / {load.p99_ms:.1f}")
    ratio = b.applied_rate / load.ok_per_s if b.applied_rate and load.ok_per_s else None
    r.add(s, "ours applied / bare", num(ratio, 2, " x"), ">= 0.65 x", judge(ratio, at_least=0.65))
    r.note(
        f"S2 bare app: non-2xx {load.non_2xx}, socket errors {load.socket_errors}; CPU: {cpu}; "
        f"CPU per request {meter.ms_per('bare_app', load.requests):.2f} ms"
    )

    with pushgateway(b.workdir) as (base, proc):
        first = requests.post(
            f"{base}/metrics/job/{JOBS[0]}/instance/w0",
            data="progress_current 0\nprogress_total 1000000\n",
            timeout=10,
        ).status_code
        meter = CpuMeter({"pushgateway": proc.pid})
        load = run_wrk(base, pushgateway_script(JOBS, WORKERS), CONNECTIONS, b.seconds)
        cpu = describe(meter.percent())
    r.add(s, "Pushgateway pushes/s", num(load.ok_per_s))
    r.add(s, "Pushgateway p50 / p99 (ms)", f"{load.p50_ms:.1f} / {load.p99_ms:.1f}")
    ratio = b.applied_rate / load.ok_per_s if b.applied_rate and load.ok_per_s else None
    r.add(
        s, "ours applied / Pushgateway", num(ratio, 1, " x"), ">= 10 x", judge(ratio, at_least=10)
    )
    r.note(
        f"S2 Pushgateway: first push answered {first}; non-2xx {load.non_2xx}, socket errors "
        f"{load.socket_errors}; CPU: {cpu}; load avg {load_average()}"
    )


def section_batched(b: Bench) -> None:
    s, r = "3 ingest batched", b.report
    problem = batch_endpoint_works(b.service.url, JOBS[0])
    if problem:
        time.sleep(2)
        problem = batch_endpoint_works(b.service.url, JOBS[0])
    if problem:
        r.add(s, "batched endpoint", "unavailable", "202 {accepted: n}", "MISS")
        r.note(f"S3: POST /progress/update with a JSON array answered {problem}")
        return
    b.batched = True
    wait_applied(b.store, JOBS, 0, 0, timeout=30)  # the probe's updates
    baseline, counters = processed(b.store, JOBS), stats(b.store)
    meter = b.cpu()
    t0 = time.monotonic()
    load = run_wrk(
        f"{b.service.url}/progress/update",
        batch_updates_script(JOBS, WORKERS, BATCH_SIZE),
        BATCH_CONNECTIONS,
        b.seconds,
    )
    t_end = time.monotonic()
    cpu = describe(meter.percent())
    accepted = load.ok * BATCH_SIZE
    applied = wait_applied(b.store, JOBS, baseline, accepted)
    rate = accepted / (applied.at - t0) if applied.at else None
    conns = f"{BATCH_CONNECTIONS} conns x {BATCH_SIZE:,}/body"
    r.add(s, f"accepted updates/s ({conns})", num(accepted / load.seconds))
    r.add(s, "request latency p50 / p99 (ms)", f"{load.p50_ms:.1f} / {load.p99_ms:.1f}")
    add_accounting(r, s, load, accepted, applied, rate, target=50000)
    r.note(
        f"S3: {accepted:,} accepted in {load.ok:,} requests, {applied.processed:,} processed; last "
        f"applied {(applied.at or t_end) - t_end:.2f} s after the load ended"
        f"{'' if applied.at else ' (TIMED OUT)'}; CPU during load: {cpu}; CPU per update: web "
        f"{meter.ms_per('web', accepted) * 1000:.1f} us, ingest "
        f"{meter.ms_per('ingest', applied.processed) * 1000:.1f} us; "
        f"{activity(counters, stats(b.store), applied.processed)}; load avg {load_average()}"
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def section_latency(b: Bench) -> None:
    s, r = "4 update-to-visible", b.report
    jobid = "latency"
    create_jobs(b.service, [jobid])
    background = Wrk(
        f"{b.service.url}/progress/update",
        single_updates_script([jobid], WORKERS),
        connections=4,
        seconds=120,
        threads=1,
    )
    try:
        hlen = b.store.redis.hlen
        wait_until(lambda: hlen(workers_key(jobid)) >= WORKERS, 30, what="1000 workers")
        meter, counters = b.cpu(), stats(b.store)
        results = probes.run_probes(b.service.url, b.store, jobid, count=20)
        cpu = describe(meter.percent())
        done = activity(counters, stats(b.store), 0).split("; ")[-1]
    finally:
        background.interrupt()
        load = background.result()
    visible = [p.visible_s if p.visible_s is not None else math.inf for p in results]
    applied = [p.applied_s for p in results if p.applied_s is not None]
    p50, p95 = _quantile(visible, 0.5), _quantile(visible, 0.95)
    r.add(s, f"p50 latency ({len(results)} probes, 1,000-worker job)", num(p50, 2, " s"))
    r.add(s, "p95 latency", num(p95, 2, " s"), "<= 1.5 s", judge(p95, at_most=1.5))
    if applied:
        r.add(
            s,
            "of which 2xx -> applied in Redis, p50 / max",
            f"{statistics.median(applied):.3f} / {max(applied):.3f} s",
        )
    errors = [p.error for p in results if p.error]
    r.note(
        f"S4: background load {load.ok_per_s:,.0f} updates/s (4 conns, non-2xx {load.non_2xx}); "
        f"probe latencies (s): {', '.join(f'{v:.2f}' for v in visible)}"
        f"{'; errors: ' + ', '.join(errors) if errors else ''}; CPU: {cpu}; {done}; "
        f"load avg {load_average()}"
    )


def section_render_cost(report: Report) -> None:
    from bench.render_bench import measure

    s = "5 render cost"
    targets = {100: 60, 1000: 120, 10000: 300}
    for m in measure((10, 100, 1000, 10000)):
        n, ms = m["workers"], m["ms"]
        target = targets.get(n)
        cpu_ms = m.get("cpu_ms")
        report.add(
            s,
            f"{n:,} workers: wall ms (median) / CPU ms / PNG bytes",
            f"{ms:,.1f} / {'?' if cpu_ms is None else f'{cpu_ms:,.1f}'} / {m['bytes']:,}",
            f"<= {target} ms" if target else "",
            judge(ms, at_most=target) if target else "",
        )
    report.note(f"S5 renders measured in the bench process; load avg {load_average()}")


def section_render_requests(b: Bench) -> None:
    s, r = "5 cached render", b.report
    jobid = "render100"
    create_jobs(b.service, [jobid])
    baseline = processed(b.store, [jobid])
    updates = [update_object(jobid, f"w{i}", i, 100) for i in range(100)]
    accepted = send_updates(b.service.url, updates, b.batched)
    wait_applied(b.store, [jobid], baseline, accepted, timeout=30)
    if not wait_charts(b.store, [jobid], timeout=30):
        r.note("S5: the 100-worker chart did not settle within 30 s")
    first = b.service.get("render", jobid=jobid)
    etag = first.headers.get("ETag", "")
    url = f"{b.service.url}/progress/render?jobid={jobid}"
    seconds = max(3.0, b.seconds / 2)
    for label, headers in (("304 (If-None-Match)", {"If-None-Match": etag}), ("200 full", {})):
        meter = b.cpu()
        load = run_wrk(url, static_script(headers), CONNECTIONS, seconds)
        cpu = describe(meter.percent())
        ratio = load.ok_per_s / b.bare_rate if b.bare_rate else None
        r.add(s, f"{label} req/s, 100 workers", num(load.ok_per_s))
        r.add(s, f"{label} / bare", num(ratio, 2, " x"), ">= 0.8 x", judge(ratio, at_least=0.8))
        r.note(
            f"S5 render {label}: {load.bytes / max(load.requests, 1):,.0f} bytes/response, "
            f"p50/p99 {load.p50_ms:.1f}/{load.p99_ms:.1f} ms, non-2xx {load.non_2xx}; CPU: {cpu}; "
            f"web CPU per request {meter.ms_per('web', load.requests):.2f} ms"
        )
    r.note(f"S5: chart of 100 workers is {len(first.content):,} bytes, ETag {etag}")


def section_memory(b: Bench) -> None:
    s, r = "6 redis memory", b.report
    big = memory.build_jobs(b.service, b.store, ["mem10k"], 10_000, b.batched)
    r.add(
        s,
        "per worker row (used_memory delta / 10,000)",
        num(big.used_memory_delta / 10_000, 0, " B"),
    )
    r.add(s, "per worker row (MEMORY USAGE workers hash)", num(big.workers_bytes / 10_000, 0, " B"))
    small = memory.build_jobs(
        b.service, b.store, [f"mem{i:03d}" for i in range(100)], 10, b.batched
    )
    r.add(s, "per 10-worker job + chart (delta / 100)", num(small.used_memory_delta / 100, 0, " B"))
    r.add(s, "per 10-worker job + chart (MEMORY USAGE keys)", num(small.key_bytes / 100, 0, " B"))
    mid = memory.build_jobs(b.service, b.store, [f"mem1k-{i}" for i in range(5)], 1000, b.batched)
    r.add(s, "per 1,000-worker job + chart (delta / 5)", num(mid.used_memory_delta / 5, 0, " B"))
    r.add(s, "per 1,000-worker job + chart (MEMORY USAGE keys)", num(mid.key_bytes / 5, 0, " B"))
    for name, f, n in (
        ("10,000-worker job", big, 1),
        ("100 x 10-worker jobs", small, 100),
        ("5 x 1,000-worker jobs", mid, 5),
    ):
        r.note(
            f"S6 {name}: keys {f.key_bytes / n:,.0f} B per job (workers {f.workers_bytes / n:,.0f}"
            f", chart {f.chart_bytes / n:,.0f}); used_memory delta {f.used_memory_delta / n:,.0f} B"
            f" per job{'' if f.complete else ' (INCOMPLETE: not all applied/charted)'}"
        )


LABELS = {
    "section_render_cost": "5 render cost",
    "section_ingest": "1 ingest single",
    "section_references": "2 references",
    "section_batched": "3 ingest batched",
    "section_latency": "4 update-to-visible",
    "section_render_requests": "5 cached render",
    "section_memory": "6 redis memory",
    **big_jobs.LABELS,
    **client_batching.LABELS,
    **replicas.LABELS,
    **fairness.LABELS,
}
# --only: each name selects these sections
GROUPS = {
    "render_cost": ("section_render_cost",),
    "ingest": ("section_ingest",),
    "references": ("section_references",),
    "batched": ("section_batched",),
    "latency": ("section_latency",),
    "render_requests": ("section_render_requests",),
    "memory": ("section_memory",),
    "big": tuple(f.__name__ for f in big_jobs.SECTIONS),
    "worst": ("section_worst_render",),  # of "big": the worst job alone, its longest Redis call
    "client": ("section_client",),
    "replicas": ("section_replicas",),  # its own master, replica and services
    "fairness": ("section_fairness",),  # its own Redis and services, two of them
}


def _run(section, *args) -> None:
    name = LABELS[section.__name__]
    started = time.monotonic()
    print(f"== {name} ...", flush=True)
    report = args[0].report if isinstance(args[0], Bench) else args[0]
    try:
        section(*args)
    except Exception as exc:  # one broken section must not hide the others
        traceback.print_exc()
        report.add(name, "section failed", f"{type(exc).__name__}: {exc}"[:60], "", "MISS")
    print(f"   {name} took {time.monotonic() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench.md")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(GROUPS),
        help="run only this section (repeat for several); default: all",
    )
    args = parser.parse_args()
    chosen = {name for group in (args.only or GROUPS) for name in GROUPS[group]}
    started = time.monotonic()
    report = Report()
    dropped = sorted(k for k in os.environ if k.startswith("PROGRESS_"))
    for key in dropped:  # the bench service runs with default settings only
        del os.environ[key]
    with tempfile.TemporaryDirectory(prefix="progress-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis", unix_socket=True).start()  # as `make run` has it
        try:
            store = Store(redis.client())
            report.header = machine(store.redis.info("server")["redis_version"])
            for key, value in report.header:
                print(f"{key}: {value}", flush=True)
            if dropped:
                report.note(f"ignored from the environment: {', '.join(dropped)}")
            if "section_render_cost" in chosen:
                _run(section_render_cost, report)
            service = Service(redis.url, workdir / "service").start()
            try:
                b = Bench(report, service, redis, store, workdir, args.seconds)
                for section in (
                    section_ingest,
                    section_references,
                    section_batched,
                    section_latency,
                    section_render_requests,
                    section_memory,
                    client_batching.section_client,
                    *big_jobs.SECTIONS,  # last: section 8's create flood fills PROGRESS_MAX_JOBS
                ):
                    if section.__name__ in chosen:
                        _run(section, b)
                for name in service.procs:
                    errors = service.log(name).count("Traceback")
                    if errors:
                        report.note(f"{name}.log has {errors} traceback(s)")
            finally:
                service.stop()
            if "section_replicas" in chosen:  # after the shared service has stopped
                _run(replicas.section_replicas, report, workdir, args.seconds)
            if "section_fairness" in chosen:  # likewise: abuse must not touch the shared one
                _run(fairness.section_fairness, report, workdir, args.seconds)
        finally:
            redis.stop()
    report.note(f"total bench time {time.monotonic() - started:.0f} s; load avg {load_average()}")
    print()
    print(report.text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.markdown())
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
