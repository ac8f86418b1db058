"""The Python API against the live service: create, attach, report, and read back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import progress_client
import pytest
import requests
from progress_client import Job, JobNotFound, RequestRejected, ServiceUnavailable

from .conftest import eventually


def worker_row(job: Job, workid: str, **expected) -> dict | None:
    """The worker's row in the job's status once it shows all `expected` fields, else None."""
    for row in job.status()["workers"]:
        if row["workid"] == workid and all(row.get(k) == v for k, v in expected.items()):
            return row
    return None


def test_create_makes_a_unique_job_with_working_urls(live_url):
    first = Job.create(live_url, desc="client api test")
    second = Job.create(live_url, desc="client api test")
    assert first.jobid != second.jobid
    assert first.jobid.count(":") >= 3  # user:host:time:random

    status = first.status()
    assert status["jobid"] == first.jobid and status["desc"] == "client api test"
    page = requests.get(first.show_url, timeout=10)
    assert page.status_code == 200 and "html" in page.headers["Content-Type"]

    attached = Job(live_url, first.jobid)  # what a worker has: only the URL and the id
    assert requests.get(attached.show_url, timeout=10).status_code == 200
    assert requests.get(attached.show_link(interval=5), timeout=10).status_code == 200

    def png():
        resp = requests.get(attached.render_url, timeout=10)
        return resp.status_code == 200 and resp.content.startswith(b"\x89PNG")

    eventually(png, 60, "the chart")


def test_ids_with_spaces_punctuation_and_unicode_round_trip(live_url, unique_jobid):
    job = Job.create(live_url, unique_jobid, desc="ids: a b/c+d ü")
    assert job.jobid == unique_jobid.replace("+", " ")  # as the service stores it (README)
    assert Job(live_url, unique_jobid).status()["jobid"] == job.jobid  # either spelling finds it
    workid = "node 1/ü+x:y,z"
    w = job.worker(workid, total=8, current=3, desc="weird id")
    w.close()
    assert w.flush(30)
    shown = workid.replace("+", " ")  # the service reads a `+` in an id as a space
    row = eventually(lambda: worker_row(job, shown, current=3), 30, "the worker's row")
    assert row["total"] == 8 and row["desc"] == "weird id"
    assert requests.get(job.show_url, timeout=10).status_code == 200


def test_context_manager_reports_completion(live_url):
    job = Job.create(live_url, desc="cm ok")
    with job.worker("ok", total=5, desc="working") as w:
        for _ in range(5):
            w.advance()
        w.update(current=4)  # done() on exit sets current = total anyway
    assert w.flush(30)
    row = eventually(lambda: worker_row(job, "ok", state="done"), 30, "state done")
    assert row["percent"] == 100 and row["ok"] is True


def test_context_manager_reports_failure_and_reraises(live_url):
    job = Job.create(live_url, desc="cm fail")
    with pytest.raises(KeyError):
        with job.worker("bad", total=10) as w:
            w.advance(3)
            raise KeyError("missing input")
    assert w.flush(30)
    row = eventually(lambda: worker_row(job, "bad", state="failed"), 30, "state failed")
    assert row["desc"] == "KeyError" and row["ok"] is False and row["current"] == 3


def test_explicit_fail_is_not_overwritten_by_a_clean_exit(live_url):
    job = Job.create(live_url, desc="cm explicit fail")
    with job.worker("soft", total=10) as w:
        w.advance(2)
        w.fail("input file corrupt")
    assert w.flush(30)
    row = eventually(lambda: worker_row(job, "soft", state="failed"), 30, "state failed")
    assert row["desc"] == "input file corrupt" and row["current"] == 2


def test_track_advances_per_item(live_url):
    job = Job.create(live_url, desc="track")
    sized = job.worker("sized")  # no total given: track takes len()
    seen = list(sized.track(["a", "b", "c", "d", "e", "f", "g"]))
    assert seen == list("abcdefg") and (sized.current, sized.total) == (7, 7)

    unsized = job.worker("unsized", total=99)
    for _ in unsized.track((i for i in range(4)), total=4):
        pass
    assert (unsized.current, unsized.total) == (4, 4)

    halfway = job.worker("halfway", total=10)
    for i in halfway.track(range(10)):
        if i == 5:
            break
    assert halfway.current == 5  # the item being worked on when it stopped is not counted

    assert progress_client.flush(30)
    eventually(lambda: worker_row(job, "sized", state="done", current=7), 30, "sized done")
    eventually(lambda: worker_row(job, "unsized", state="done"), 30, "unsized done")
    eventually(lambda: worker_row(job, "halfway", current=5, percent=50), 30, "halfway at 50%")


def test_tight_loop_delivers_the_last_state(live_url):
    job = Job.create(live_url, desc="tight loop")
    w = job.worker("fast", total=5000)
    for i in range(1, 5001):
        w.update(current=i, desc=f"item {i}")
    w.close()
    assert w.flush(30)
    eventually(lambda: worker_row(job, "fast", current=5000, desc="item 5000"), 30, "last state")


def test_status_of_an_unknown_job_raises_job_not_found(live_url):
    with pytest.raises(JobNotFound) as caught:
        Job(live_url, "client test: no such job").status()
    assert caught.value.status == 404


def test_update_of_an_unknown_job_is_logged_not_raised(live_url, caplog):
    w = Job(live_url, "client test: never created").worker("w1", total=3)
    w.done()
    assert w.flush(30)  # settled: the service answered 404 and the state was dropped
    assert progress_client.queued() == 0
    assert "is gone" in caplog.text and "404" in caplog.text


def test_create_against_a_dead_service_raises(dead_url):
    with pytest.raises(ServiceUnavailable, match="cannot reach"):
        Job.create(dead_url, "x", timeout=2)


WORKER = textwrap.dedent(
    """
    import sys
    from progress_client import Job

    job = Job.from_env()
    with job.worker(sys.argv[1], total=20, min_interval=60) as w:
        for i in w.track(range(20)):
            if sys.argv[2] == "crash" and i == 12:
                raise RuntimeError("disk full")
    """
)


def run_workers(env: dict, *args: tuple, timeout: float = 60) -> list:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *a],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]
    return [(p.wait(timeout), p.stderr.read()) for p in procs]


def test_worker_processes_deliver_their_final_state_at_exit(live_url):
    # min_interval=60: only the exit-time flush can get the final states out in time.
    job = Job.create(live_url, desc="subprocess workers")
    results = run_workers(job.env(), ("p1", "ok"), ("p2", "ok"), ("p3", "crash"))
    assert [code for code, _ in results[:2]] == [0, 0]
    assert results[2][0] != 0 and "RuntimeError: disk full" in results[2][1]

    def finished():
        status = job.status()
        return status["counts"]["done"] == 2 and status["counts"]["failed"] == 1 and status

    status = eventually(finished, 30, "two done and one failed")
    failed = [w for w in status["workers"] if w["state"] == "failed"]
    assert failed[0]["workid"] == "p3" and failed[0]["desc"] == "RuntimeError"
    assert failed[0]["current"] == 12


def test_worker_process_exits_promptly_when_the_service_is_down(dead_url):
    env = {**Job(dead_url, "down").env(), "PROGRESS_FLUSH_TIMEOUT": "2"}
    started = time.monotonic()
    [(code, stderr)] = run_workers(env, ("p1", "ok"))
    assert code == 0, stderr
    assert time.monotonic() - started < 30
    assert "Traceback" not in stderr
    assert "not delivered before exit" in stderr  # the log line is all the worker lost


def test_worker_with_a_wrong_secret_is_refused_quietly(live_url, caplog):
    job = Job.create(live_url, desc="secret", secret="right")
    with Job(live_url, job.jobid, secret="right").worker("good", total=1):
        pass
    wrong = Job(live_url, job.jobid, secret="wrong").worker("bad", total=1)
    wrong.done()
    assert wrong.flush(30)  # settled: refused for good, not retried
    assert progress_client.queued() == 0
    assert "403" in caplog.text
    eventually(lambda: worker_row(job, "good", state="done"), 30, "the right secret's worker")
    assert worker_row(job, "bad") is None


def test_create_with_expected_workers(live_url):
    job = Job.create(live_url, desc="expects 4", workers=4)
    assert job.info["workers_expected"] == 4  # the create answer's name, as in status
    with job.worker("only one", total=1):
        pass
    assert progress_client.flush(30)

    def one_done():
        status = job.status()
        return status["counts"]["done"] == 1 and status

    status = eventually(one_done, 30, "the one worker done")
    assert status["workers_expected"] == 4 and status["workers_silent"] == 3
    assert status["percent"] == 25  # the three silent workers count as 0 %


def test_delete_removes_the_job(live_url):
    job = Job.create(live_url, desc="to delete")
    with job.worker("w1", total=2):
        pass
    assert progress_client.flush(30)
    eventually(lambda: job.status()["counts"]["done"] == 1, 30, "the worker done")
    job.delete()
    with pytest.raises(JobNotFound):
        job.status()
    with pytest.raises(JobNotFound) as again:
        job.delete()
    assert again.value.status == 404


def test_delete_needs_the_jobs_secret(live_url):
    job = Job.create(live_url, desc="secret delete", secret="right")
    with pytest.raises(RequestRejected) as refused:
        Job(live_url, job.jobid, secret="wrong").delete()
    assert refused.value.status == 403
    assert job.status()["jobid"] == job.jobid  # still there
    job.delete()
    with pytest.raises(JobNotFound):
        job.status()
