"""Worker lifetimes as a user sees them: workers report through the live service (the
Procfile's processes: web, ingest, render) at times this test chooses, over HTTP as curl or a
script would, and each worker's started / finished / duration in the status JSON must be the
times the test saw its requests answered (within the round trip); the summary names the median,
the slowest five and the worker still running after all of them; the lifetimes view is a PNG
and a bad view a 400 naming it."""

from __future__ import annotations

import io
import statistics
import time

from PIL import Image

from tests.harness import wait_until

TOLERANCE = 0.25  # s: a request's round trip, and the stamp taken somewhere inside it
FINISH_GAP = 0.4  # s between two workers finishing


def timed_update(service, jobid: str, workid: str, current: float, ok: int = 1) -> tuple:
    """Send one update; return when it was sent and when its answer came back."""
    sent = time.time()
    resp = service.get("update", jobid=jobid, workid=workid, current=current, total=10, ok=ok)
    assert resp.status_code == 202, resp.text
    return sent, time.time()


def within(value: float | None, window: tuple[float, float]) -> bool:
    return value is not None and window[0] - TOLERANCE <= value <= window[1] + TOLERANCE


def workers_when_applied(service, jobid: str, done: int) -> tuple[dict, dict]:
    """The status once `done` workers are finished: its workers by id, and its lifetimes."""

    def status():
        doc = service.get("status", jobid=jobid, workers="all").json()
        return doc if doc["lifetimes"]["finished"] == done else None

    doc = wait_until(status, 60, what=f"{done} finished workers in the status")
    return {w["workid"]: w for w in doc["workers"]}, doc["lifetimes"]


def test_each_worker_s_lifetime_is_the_time_the_test_saw_and_the_slow_one_is_flagged(
    live_service, jobid
):
    assert live_service.get("create", jobid=jobid, desc="Lifetimes").status_code == 200
    names = [f"w{i}" for i in range(1, 8)]
    started = {"straggler": timed_update(live_service, jobid, "straggler", 0)}
    for w in names:
        started[w] = timed_update(live_service, jobid, w, 1)
    finished = {}
    for w in names:  # each finishes later than the one before; w4 fails
        time.sleep(FINISH_GAP)
        timed_update(live_service, jobid, w, 5)  # progress: moves neither start nor finish
        finished[w] = timed_update(live_service, jobid, w, 10 if w != "w4" else 6, int(w != "w4"))

    rows, lifetimes = workers_when_applied(live_service, jobid, len(names))
    for w in names:
        row = rows[w]
        assert within(row["started"], started[w]), (w, row, started[w])
        assert within(row["finished"], finished[w]), (w, row, finished[w])
        assert row["duration"] == round(row["finished"] - row["started"], 6)
        least = finished[w][0] - started[w][1]  # it cannot have taken less than this
        assert least - TOLERANCE < row["duration"] < finished[w][1] - started[w][0] + TOLERANCE
    straggler = rows["straggler"]
    assert within(straggler["started"], started["straggler"])
    assert (straggler["state"], straggler["finished"], straggler["duration"]) == (
        "running",
        None,
        None,
    )

    durations = {w: rows[w]["duration"] for w in names}
    assert lifetimes["median_seconds"] == statistics.median(durations.values())
    slowest = sorted(names, key=durations.get, reverse=True)[:5]
    assert slowest == ["w7", "w6", "w5", "w4", "w3"]  # they finished in this order
    assert [w["workid"] for w in lifetimes["slowest"]] == slowest
    assert [w["duration"] for w in lifetimes["slowest"]] == [durations[w] for w in slowest]
    assert lifetimes["longest_seconds"] == durations["w7"]
    # The straggler started first and still runs: longer than any finished worker took.
    assert lifetimes["overstaying"] == 1
    [flagged] = lifetimes["overstaying_workers"]
    assert flagged["workid"] == "straggler" and flagged["started"] == straggler["started"]
    assert flagged["running_seconds"] > lifetimes["longest_seconds"]

    timed_update(live_service, jobid, "straggler", 10)
    rows, lifetimes = workers_when_applied(live_service, jobid, len(names) + 1)
    assert lifetimes["overstaying"] == 0
    assert lifetimes["slowest"][0]["workid"] == "straggler"

    png = live_service.get("render", jobid=jobid, view="lifetimes")
    assert (png.status_code, png.headers["Content-Type"]) == (200, "image/png")
    image = Image.open(io.BytesIO(png.content))
    assert (image.format, image.size) == ("PNG", (1000, 400))
    image.verify()
    bad = live_service.get("render", jobid=jobid, view="bars")
    assert bad.status_code == 400
    assert bad.headers["Content-Type"].startswith("application/json")
    assert "view" in bad.json()["description"] + bad.json()["title"]


def test_the_cli_info_shows_each_worker_s_run_and_the_lifetimes(live_service, jobid):
    live_service.get("create", jobid=jobid)
    timed_update(live_service, jobid, "slow", 1)
    timed_update(live_service, jobid, "quick", 1)
    time.sleep(FINISH_GAP)
    timed_update(live_service, jobid, "quick", 10)
    workers_when_applied(live_service, jobid, 1)
    out = _cli(live_service, "info", jobid)
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "RAN" in lines["WORKID"]
    assert "running" in lines["slow"] and "done" in lines["quick"]
    assert "median" in out and "slowest: quick" in out
    assert "running longer than any finished worker: slow" in out


def _cli(service, *args: str) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "progress_client", "--url", service.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
