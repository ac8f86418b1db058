"""create's workers=N: the job expects N workers. Silent ones count 0 % in the overall percent,
the job is complete (status, completion hook) only once N are done, and more than N are
accepted. Jobs created without it behave as before. Run against a Redis of its own, with the
app in this process and the ingest step run here, so every step is seen as it happens."""

from __future__ import annotations

import pytest

from domain.model import JobSnapshot, WorkerRow, summarize
from renderer.chart import _rows, _workers_text
from tasks.store import job_keys
from tests.harness import RedisServer
from tests.inprocess import InProcessService

HOOK = "http://127.0.0.1:9/hook"  # recorded by the RecordingBroker, never called


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("expected-redis")).start()
    yield InProcessService(server)
    server.stop()


def test_status_counts_silent_workers_as_zero_until_n_have_finished(service, jobid):
    assert service.get("create", jobid=jobid, workers="4").json["workers_expected"] == 4
    service.report(jobid, ("w1", 10, 10), ("w2", 5, 10))
    doc = service.status(jobid)
    assert doc["percent"] == 37.5  # (100 + 50 + 0 + 0) / 4
    assert (doc["workers_reported"], doc["workers_expected"], doc["workers_silent"]) == (2, 4, 2)
    assert doc["complete"] is False
    assert doc["eta_seconds"] is None  # the silent ones may take any time

    service.report(jobid, ("w2", 10, 10), ("w3", 10, 10))
    doc = service.status(jobid)
    assert (doc["percent"], doc["workers_silent"], doc["complete"]) == (75.0, 1, False)
    assert doc["counts"] == {"running": 0, "done": 3, "failed": 0, "stale": 0}

    service.report(jobid, ("w4", 3, 3))
    doc = service.status(jobid)
    assert (doc["percent"], doc["workers_silent"], doc["complete"]) == (100.0, 0, True)


def test_a_job_without_workers_behaves_as_before(service, jobid):
    assert service.get("create", jobid=jobid).json["workers_expected"] is None
    service.report(jobid, ("w1", 10, 10), ("w2", 5, 10))
    doc = service.status(jobid)
    assert (doc["percent"], doc["workers_expected"], doc["workers_silent"]) == (75.0, None, 0)
    assert doc["complete"] is False
    service.report(jobid, ("w2", 10, 10))
    assert service.status(jobid)["complete"] is True


def test_more_workers_than_expected_are_accepted_and_counted(service, jobid):
    service.get("create", jobid=jobid, workers="2")
    service.report(jobid, ("a", 10, 10), ("b", 10, 10), ("c", 0, 10))
    doc = service.status(jobid)
    assert (doc["workers_reported"], doc["workers_silent"]) == (3, 0)
    assert doc["percent"] == pytest.approx(66.67)  # over the 3 that reported
    assert doc["complete"] is False  # c is running
    service.report(jobid, ("c", 10, 10))
    assert service.status(jobid)["complete"] is True


def test_the_completion_hook_waits_for_n_finished_workers(service, jobid):
    service.get("create", jobid=jobid, workers="3")
    service.store.redis.hset(job_keys(jobid)[0], "notify", HOOK)  # the API checks hosts
    service.report(jobid, ("w1", 1, 1), ("w2", 1, 1))
    assert service.hooks(jobid) == []  # every worker that reported is done, but one is silent
    service.report(jobid, ("w3", 1, 1))
    assert service.hooks(jobid) == ["done"]


def test_a_failure_fires_the_hook_at_once_whatever_n(service, jobid):
    service.get("create", jobid=jobid, workers="5")
    service.store.redis.hset(job_keys(jobid)[0], "notify", HOOK)
    service.report(jobid, ("w1", 1, 4, False))
    assert service.hooks(jobid) == ["failed"]


def test_re_creating_without_workers_forgets_the_number(service, jobid):
    service.get("create", jobid=jobid, workers="9")
    service.get("create", jobid=jobid)
    service.report(jobid, ("w1", 1, 1))
    doc = service.status(jobid)
    assert (doc["workers_expected"], doc["workers_silent"], doc["complete"]) == (None, 0, True)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("0", ">= 1"),
        ("-3", ">= 1"),
        ("0.5", ">= 1"),
        ("many", "a number"),
        ("nan", "finite"),
        ("100001", "at most 100000"),  # PROGRESS_MAX_WORKERS_PER_JOB
    ],
)
def test_a_bad_number_of_workers_is_refused_and_creates_nothing(service, jobid, value, rule):
    resp = service.get("create", jobid=jobid, workers=value)
    assert resp.status_code == 400, resp.text
    assert '"workers"' in resp.json["description"] and rule in resp.json["description"]
    assert service.get("status", jobid=jobid).status_code == 404


def test_a_fraction_of_a_worker_is_dropped_as_for_every_whole_number(service, jobid):
    assert service.get("create", jobid=jobid, workers="3.9").json["workers_expected"] == 3


def test_the_kept_summary_and_summarize_agree_on_n(service, jobid):
    service.get("create", jobid=jobid, workers="5")
    service.report(jobid, ("w1", 1, 4), ("w2", 4, 4))
    snapshot = service.store.snapshot(jobid)
    assert snapshot.expected == 5
    kept = service.store.job_info(jobid, 0.0, 300).summary
    assert summarize(snapshot, 0.0, 300).percent == pytest.approx(kept.percent) == 25.0
    assert summarize(snapshot, 0.0, 300).silent == kept.silent == 3


def test_summarize_without_a_store():
    rows = tuple(WorkerRow(f"w{i}", 1, 2, True, "", 100.0) for i in range(3))
    job = JobSnapshot("j", "", 0.0, 60, workers=rows, expected=6)
    summary = summarize(job, 100.0, 300)
    assert (summary.percent, summary.silent, summary.complete) == (25.0, 3, False)


@pytest.mark.parametrize(
    ("reported", "expected", "text"),
    [
        (3, None, "3 workers"),
        (1, None, "1 worker"),
        (64, 64, "64 workers"),
        (52, 64, "12 of 64 workers have not reported yet"),
        (63, 64, "1 of 64 workers has not reported yet"),
        (70, 64, "70 workers reported, 64 expected"),
    ],
)
def test_the_chart_says_how_many_have_not_reported(reported, expected, text):
    assert _workers_text(reported, expected) == text


def test_the_chart_counts_silent_workers_as_zero(service, jobid):
    """The chart's overall percent is the status's: drawn from the job read for its render."""
    service.get("create", jobid=jobid, workers="4")
    service.report(jobid, ("w1", 1, 1), ("w2", 1, 2))
    snapshot = service.store.snapshot(jobid)
    assert _rows(snapshot.bars(), 0.0, 300, snapshot.expected).overall == 37.5
