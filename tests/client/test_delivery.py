"""The background sender against real local servers that are down, silent, failing or picky:
the worker never sees an exception and never waits, and the last state gets through."""

from __future__ import annotations

import contextlib
import logging
import time

import progress_client
import pytest
from progress_client import Job, _sender

from .conftest import eventually


def test_tight_loop_is_coalesced_and_last_state_arrives(make_server):
    server = make_server()
    w = Job(server.url, "job-1").worker("w1", total=20000, min_interval=0.5)
    started = time.monotonic()
    for _ in range(20000):
        w.advance()
    w.close()
    assert progress_client.flush(30)
    elapsed = time.monotonic() - started

    sent = server.updates("w1")
    # One request may leave per min_interval, plus the first one and the final one on close.
    assert len(sent) <= elapsed / 0.5 + 2, (len(sent), elapsed)
    assert len(sent) < 200
    assert sent[-1]["current"] == "20000"
    assert sent[-1]["total"] == "20000"
    assert sent[-1]["ok"] == "1"


def test_each_worker_gets_its_own_interval_and_its_last_state(make_server):
    server = make_server()
    job = Job(server.url, "job-2")
    started = time.monotonic()
    workers = [job.worker(f"w{i}", total=100, min_interval=2) for i in range(5)]
    for step in range(1, 101):
        for w in workers:
            w.update(current=step, desc=f"step {step}")
        time.sleep(0.01)  # slow enough that an uncoalesced sender would send every step
    for w in workers:
        w.close()
    assert progress_client.flush(30)
    elapsed = time.monotonic() - started
    for i in range(5):
        sent = server.updates(f"w{i}")
        assert sent[-1]["current"] == "100" and sent[-1]["desc"] == "step 100"
        # The first state, one per min_interval, the last one on close.
        assert len(sent) <= elapsed / 2 + 2, (len(sent), elapsed)


def test_service_down_costs_the_worker_nothing(dead_url, caplog):
    caplog.set_level(logging.WARNING, logger="progress_client")
    started = time.monotonic()
    w = Job(dead_url, "job-down").worker("w1", total=1000)
    for i in range(1000):
        w.update(current=i, desc="busy")
    with pytest.raises(ZeroDivisionError):  # the worker's own error still comes through
        with w:
            w.advance()
            raise ZeroDivisionError("worker bug")
    spent = time.monotonic() - started
    assert spent < 10, f"reporting blocked the worker for {spent:.1f}s"

    started = time.monotonic()
    assert progress_client.flush(2) is False  # not delivered: still queued
    assert time.monotonic() - started < 15
    assert progress_client.queued() == 1
    eventually(lambda: "unavailable" in caplog.text, 15, "a warning about the dead service")


def test_silent_service_is_bounded_by_timeouts(silent_url):
    started = time.monotonic()
    w = Job(silent_url, "job-silent").worker("w1", total=10, timeout=1.0)
    for _ in range(10):
        w.advance()
    w.close()
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert progress_client.flush(1.5) is False
    assert time.monotonic() - started < 15


def test_retries_503_and_429_until_accepted(make_server):
    script = [
        (503, {}, {"title": "Service Unavailable", "description": "store down"}),
        (429, {"Retry-After": "1"}, {"title": "Too Many Requests"}),
        (503, {"Retry-After": "0"}, {"title": "Service Unavailable"}),
    ]

    def responder(params, index):
        return script[index] if index < len(script) else (202, {}, {"accepted": True})

    server = make_server(responder)
    w = Job(server.url, "job-retry").worker("w1", total=10, current=7, desc="retry me")
    eventually(lambda: len(server.updates()) >= 4, 60, "the sender to retry until accepted")
    sent = server.updates()
    assert all(r["current"] == "7" and r["desc"] == "retry me" for r in sent)
    assert w.flush(5)
    assert progress_client.queued() == 0


def test_newer_state_replaces_one_that_failed(make_server):
    def responder(params, index):
        return (503, {"Retry-After": "0"}, {}) if index == 0 else (202, {}, {"accepted": True})

    server = make_server(responder)
    w = Job(server.url, "job-newer").worker("w1", total=10, current=1, min_interval=0)
    eventually(lambda: server.updates(), 10, "the first attempt")
    w.update(current=9)
    eventually(lambda: any(r["current"] == "9" for r in server.updates()), 30, "the newer state")
    assert w.flush(5)
    assert server.updates()[-1]["current"] == "9"


def test_client_errors_are_logged_and_not_retried(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="progress_client")

    def responder(params, index):
        return 404, {}, {"title": "Unknown job", "description": "there is no job 'gone'"}

    server = make_server(responder)
    w = Job(server.url, "gone").worker("w1", total=10)
    assert w.flush(30) is True  # settled: the service answered, the state was dropped
    assert progress_client.queued() == 0
    assert len(server.updates()) == 1
    assert "job 'gone' is gone" in caplog.text and "Unknown job" in caplog.text


def test_a_job_that_vanished_is_logged_as_gone_once_per_job(live_url, caplog, monkeypatch):
    """Both jobs are deleted while their workers report (as a reset of the service's store
    does to every job): each is named as gone once, however many of its workers' states are
    refused, and a job created again takes their next states."""
    monkeypatch.setattr(_sender, "LOG_EVERY", 0.0)  # no line is held back by time
    caplog.set_level(logging.WARNING, logger="progress_client")
    jobs = [Job.create(live_url, desc=f"vanishing {i}") for i in range(2)]
    workers = [job.worker(f"w{i}", total=10, min_interval=0) for job in jobs for i in range(3)]
    assert progress_client.flush(30)
    for job in jobs:
        job.delete()
    for current in range(2, 6):
        for w in workers:
            w.update(current=current)
        assert progress_client.flush(30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    for job in jobs:
        [line] = [m for m in warnings if f"job {job.jobid!r} is gone" in m]
        assert "404" in line and "dropped until the job is created again" in line

    again = Job.create(live_url, jobid=jobs[0].jobid, desc="back")
    for w in workers[:3]:
        w.update(current=9)
    assert progress_client.flush(30)
    eventually(lambda: again.status()["workers_reported"] == 3, 30, "the re-created job's workers")
    jobs[0].delete()
    workers[0].update(current=10)
    assert progress_client.flush(30)
    gone_again = [r for r in caplog.records if f"job {jobs[0].jobid!r} is gone" in r.getMessage()]
    assert len(gone_again) == 2  # gone, back, and gone once more: said again


def test_failures_are_logged_once_per_minute(dead_url, caplog):
    caplog.set_level(logging.WARNING, logger="progress_client")
    w = Job(dead_url, "job-log").worker("w1", total=10)
    for i in range(5):  # every flush forces one more failed attempt
        w.update(current=i)
        w.flush(5)
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_reporting_never_raises_on_bad_values(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="progress_client")
    server = make_server()
    w = Job(server.url, "job-bad").worker("w1", total=10)
    w.update(current="not a number")
    w.advance()  # "not a number" + 1: a TypeError inside, a log line outside
    w.update(current=3, desc="tab\tok, escape \x1b and bell \x07 replaced")
    w.close()
    assert progress_client.flush(10)
    assert "advance() ignored an error" in caplog.text
    last = server.updates()[-1]
    assert last["current"] == "3"
    assert last["desc"] == "tab\tok, escape   and bell   replaced"


def test_secret_travels_in_a_post_body_not_the_url(make_server):
    server = make_server()
    w = Job(server.url, "job-secret", secret="s3cret").worker("w1", total=2)
    w.done()
    w.close()
    assert progress_client.flush(10)
    sent = server.updates()
    assert {r["method"] for r in sent} == {"POST"}
    assert sent[-1]["secret"] == "s3cret" and sent[-1]["current"] == "2"


def test_handles_in_many_threads_share_one_sender(make_server):
    import threading

    server = make_server()
    job = Job(server.url, "job-threads")

    def work(n: int) -> None:
        with job.worker(f"t{n}", total=500, min_interval=0.2) as w:
            for _ in w.track(range(500)):
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert progress_client.flush(30)
    for n in range(8):
        last = server.updates(f"t{n}")[-1]
        assert (last["current"], last["total"], last["ok"]) == ("500", "500", "1")
    assert len(server.updates()) < 8 * 500 / 10


def _multiprocessing_worker(url: str) -> None:
    w = Job(url, "job-mp").worker("mp", total=5, min_interval=60)
    w.done()  # no close(): due in 60 s, so only the flush at the child's exit can send it


def test_multiprocessing_child_flushes_at_exit(make_server):
    multiprocessing = pytest.importorskip("multiprocessing")
    try:
        context = multiprocessing.get_context("fork")  # ends with os._exit(): no atexit
    except ValueError:
        pytest.skip("no fork start method on this platform")
    server = make_server()
    child = context.Process(target=_multiprocessing_worker, args=(server.url,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    eventually(
        lambda: any(r["current"] == "5" for r in server.updates("mp")), 10, "the final state"
    )


def test_context_manager_exit_delivers_before_a_hard_exit(make_server):
    import subprocess
    import sys
    import textwrap

    server = make_server()
    script = textwrap.dedent(
        f"""
        import os
        from progress_client import Job
        with Job({server.url!r}, "job-hard-exit").worker("w1", total=3, min_interval=60) as w:
            w.advance(2)
        os._exit(0)  # skips atexit: only close() waiting on the way out can deliver
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    last = server.updates("w1")[-1]
    assert (last["current"], last["ok"]) == ("3", "1")


def test_close_does_not_wait_while_the_service_is_known_down(silent_url):
    job = Job(silent_url, "job-known-down")
    first = job.worker("first", total=2, timeout=0.5)
    eventually(lambda: not first.flush(5), 30, "a failed attempt")  # the service is down
    first.timeout = 30
    first.update(current=1)  # its retries now hang too: no quick failure ends a wait early

    second = job.worker("second", total=2, timeout=30)  # an attempt would hang 30 s
    started = time.monotonic()
    second.close(timeout=20)
    assert time.monotonic() - started < 10
    assert progress_client.queued() == 2  # nothing lost: both are still queued


@contextlib.contextmanager
def sender_held():
    """Hold the background sender's lock (re-entrant, so reports from this thread still queue):
    its thread cannot claim a state before the block ends, and then finds them all due."""
    sender = _sender.get_sender()
    with sender._cond:
        yield


def test_many_workers_in_one_process_share_batched_posts(make_server):
    calls = []

    def responder(params, index):
        calls.append(index)
        return 202, {}, {"accepted": True}

    server = make_server(responder)
    job = Job(server.url, "job-batched", secret="s")
    with sender_held():
        workers = [job.worker(f"w{i}", total=10, min_interval=0.5) for i in range(60)]
    for step in range(1, 11):
        for w in workers:
            w.update(current=step)
        time.sleep(0.05)
    for w in workers:
        w.close(timeout=0)
    assert progress_client.flush(30)
    for i in range(60):
        last = server.updates(f"w{i}")[-1]
        assert (last["current"], last["total"], last["secret"]) == ("10", "10", "s")
    # One request per worker and step would be 600; batches of up to 100 make it a handful.
    assert len(calls) <= 30, len(calls)
    first = server.updates()[0]
    assert first["batch"] == 60, first  # the 60 starting states, all queued at once: one POST


def test_a_service_without_batches_gets_each_state_on_its_own(make_server):
    def responder(params, index):  # an MWA service: a JSON body has no jobid, a 400
        if not params:
            return 400, {}, {"title": "Missing parameter", "description": "jobid"}
        return 202, {}, {"accepted": True}

    server = make_server(responder)
    job = Job(server.url, "job-mwa")
    for rnd in range(2):
        with sender_held():  # the five states of a round are due together: a batch if any
            workers = [job.worker(f"w{i}", total=3, current=rnd + 1) for i in range(5)]
            for w in workers:
                w.close(timeout=0)
        assert progress_client.flush(30)
    for i in range(5):
        assert server.updates(f"w{i}")[-1]["current"] == "2"
    batched = [r for r in server.updates() if r["batch"]]
    # Round 1: one batch of 5, refused, then each state alone; round 2: no batch tried at all.
    assert [r["batch"] for r in batched] == [5] * 5, batched
    assert len(server.updates()) == 5 + 5 + 5


def test_one_bad_state_in_a_batch_costs_only_itself(live_url, caplog):
    caplog.set_level(logging.WARNING, logger="progress_client")
    job = Job.create(live_url, desc="batch with a bad neighbour")
    good = [job.worker(f"g{i}", total=2) for i in range(5)]
    lost = Job(live_url, "client test: no such job").worker("x", total=2)
    for w in [*good, lost]:
        w.done()
        w.close(timeout=0)
    assert progress_client.flush(30)
    eventually(lambda: job.status()["counts"]["done"] == 5, 30, "the five good workers done")
    assert "404" in caplog.text and "no such job" in caplog.text
