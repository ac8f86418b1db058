"""Section 9 of `make bench`: what the client's batching gives a process reporting for many workers.

One Python subprocess (this interpreter, the client as shipped) creates a job, opens 1,000
workers (total=10), advances each 10 times round-robin as fast as it can (the sender coalesces:
at most one state per worker per min_interval, the default 1 s), then progress_client.flush(60).
Measured per run: the time from the first worker opened until the service's status counts all
1,000 done (polled here every POLL s), the HTTP requests /progress/update received (GET and POST,
from /metrics before and after, which lag the requests by up to a second), the states accepted,
and the client's CPU (time.process_time() in the child, from the first worker to the end of the
flush; its whole-process CPU from the rusage of the waited-for child in the note).

Once batched (as shipped: up to MAX_BATCH states per JSON POST), once single: the child then sets
`_sender.MAX_BATCH = 1` before its first report, so each claim takes one state and goes out as one
GET through Sender._deliver, the path a service that refuses batches gets. (The alternative,
`_Service.batches = False`, would mean planting a _Service in the sender's private dict before
the first submit.) Each child is bounded by TIMEOUT s and killed by its PID past it."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.report import load_average, num
from tests.harness import ROOT

WORKERS = 1000
STEPS = 10
TIMEOUT = 120.0  # seconds per child run, all told
POLL = 0.02  # seconds between two status reads
LABEL = "9 client batching"

CHILD = r"""
import json, sys, time
mode, url, jobid = sys.argv[1:4]
n, steps = int(sys.argv[4]), int(sys.argv[5])
import progress_client
from progress_client import _sender
if mode == "single":
    _sender.MAX_BATCH = 1  # every claim takes one state: one GET each (Sender._deliver)
job = progress_client.Job.create(url, jobid, desc=f"client batching bench ({mode})")
cpu0, t0 = time.process_time(), time.monotonic()
workers = [job.worker(f"w{i}", total=steps) for i in range(n)]
for _ in range(steps):
    for w in workers:
        w.advance()
t_loop = time.monotonic()
ok = progress_client.flush(60)
t_flushed = time.monotonic()
print(json.dumps({
    "t0": t0, "loop_s": t_loop - t0, "flush_s": t_flushed - t_loop, "flushed": ok,
    "cpu_s": time.process_time() - cpu0, "queued": progress_client.queued(),
}), flush=True)
"""


def _counters(url: str) -> dict[str, float]:
    """/progress/update request counts by method, and the updates accepted, service-wide."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = {"GET": 0.0, "POST": 0.0, "accepted": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "progress_http_request_duration_seconds_count"
                and sample.labels.get("route") == "/progress/update"
                and sample.labels.get("method") in ("GET", "POST")
            ):
                found[sample.labels["method"]] += sample.value
            elif sample.name == "progress_updates_accepted_total":
                found["accepted"] += sample.value
    return found


def _settled_counters(url: str, timeout: float = 10.0) -> dict[str, float]:
    """The counters once two reads a second apart agree (they lag the requests)."""
    deadline = time.monotonic() + timeout
    last = _counters(url)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _counters(url)
        if now == last:
            return now
        last = now
    return last


def _done(url: str, jobid: str) -> int:
    try:
        resp = requests.get(
            f"{url}/progress/status", params={"jobid": jobid, "workers": "none"}, timeout=5
        )
        if resp.status_code != 200:
            return 0
        return int(resp.json().get("counts", {}).get("done", 0))
    except (requests.RequestException, ValueError):
        return 0


def run_once(url: str, mode: str) -> dict:
    """One child run; returns its figures (None values where it timed out)."""
    jobid = f"clientbench-{mode}-{uuid.uuid4().hex[:8]}"
    before = _settled_counters(url)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    deadline = started + TIMEOUT
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, url, jobid, str(WORKERS), str(STEPS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    applied_at = None
    try:
        while time.monotonic() < deadline:
            if _done(url, jobid) >= WORKERS:
                applied_at = time.monotonic()
                break
            if proc.poll() is not None and proc.returncode != 0:
                break
            time.sleep(POLL)
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        proc.kill()  # this child only, by its PID
        out, err = proc.communicate()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = _settled_counters(url)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    child = json.loads(lines[-1]) if lines else {}
    t0 = child.get("t0")
    return {
        "mode": mode,
        "rc": proc.returncode,
        "stderr": err.strip().splitlines()[-3:],
        "applied_s": applied_at - t0 if applied_at and t0 else None,
        "get": after["GET"] - before["GET"],
        "post": after["POST"] - before["POST"],
        "accepted": after["accepted"] - before["accepted"],
        "cpu_s": child.get("cpu_s"),
        "process_cpu_s": (children.ru_utime + children.ru_stime)
        - (children0.ru_utime + children0.ru_stime),
        "loop_s": child.get("loop_s"),
        "flush_s": child.get("flush_s"),
        "flushed": child.get("flushed"),
        "queued": child.get("queued"),
        "wall_s": time.monotonic() - started,
    }


def _ratio(a: float | None, b: float | None) -> str:
    return num(a / b, 2, " x") if a is not None and b else "n/a"


def section_client(b) -> None:
    s, r = LABEL, b.report
    batched = run_once(b.service.url, "batched")
    single = run_once(b.service.url, "single")
    what = f"{WORKERS:,} workers x {STEPS} steps from one process"
    reqs_b, reqs_s = batched["get"] + batched["post"], single["get"] + single["post"]
    r.add(
        s,
        f"{what}: requests sent batched / single",
        f"{reqs_b:,.0f} / {reqs_s:,.0f} ({_ratio(reqs_s, reqs_b)} fewer)",
    )
    r.add(
        s,
        "time to all applied batched / single (s)",
        f"{num(batched['applied_s'], 2)} / {num(single['applied_s'], 2)} "
        f"({_ratio(batched['applied_s'], single['applied_s'])})",
    )
    r.add(
        s,
        "client CPU batched / single (s)",
        f"{num(batched['cpu_s'], 2)} / {num(single['cpu_s'], 2)} "
        f"({_ratio(batched['cpu_s'], single['cpu_s'])})",
    )
    for f in (batched, single):
        problem = "" if f["rc"] == 0 and f["applied_s"] else f" (FAILED: {f['stderr']})"
        r.note(
            f"S9 {f['mode']}: /progress/update GET {f['get']:,.0f}, POST {f['post']:,.0f}, "
            f"updates accepted {f['accepted']:,.0f}; advance loop {num(f['loop_s'], 3)} s, "
            f"flush {num(f['flush_s'], 2)} s (flushed {f['flushed']}, queued {f['queued']}); "
            f"child CPU incl. start-up and imports {f['process_cpu_s']:.2f} s; run "
            f"{f['wall_s']:.1f} s{problem}; load avg {load_average()}"
        )


LABELS = {"section_client": LABEL}
