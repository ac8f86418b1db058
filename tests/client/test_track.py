"""A total the caller gave wins over track()'s guess from len(): a worker that declared 5 items
and fails after 2 shows 40 %, not 100 %."""

from __future__ import annotations

import progress_client
import pytest
from progress_client import Job

from .conftest import eventually


def row(job: Job, workid: str, **expected) -> dict | None:
    for worker in job.status()["workers"]:
        if worker["workid"] == workid and all(worker.get(k) == v for k, v in expected.items()):
            return worker
    return None


def test_declared_total_wins_over_the_iterables_length(live_url):
    job = Job.create(live_url, desc="track keeps the declared total")
    with pytest.raises(RuntimeError):
        with job.worker("w2", total=5) as w:
            for _ in w.track(range(2)):
                pass
            raise RuntimeError("after two of five")
    assert (w.current, w.total) == (2, 5)
    assert progress_client.flush(30)
    found = eventually(lambda: row(job, "w2", state="failed"), 30, "w2 failed")
    assert found["percent"] == 40 and found["total"] == 5


def test_total_given_to_update_wins_too(live_url):
    job = Job.create(live_url, desc="track keeps update's total")
    w = job.worker("w1")
    w.update(total=8)
    for _ in w.track(["a", "b"]):
        pass
    w.close()
    assert w.flush(30)
    eventually(lambda: row(job, "w1", current=2, total=8, percent=25), 30, "w1 at 25 %")


def test_track_fills_in_a_total_only_when_none_was_given(live_url):
    job = Job.create(live_url, desc="track fills the total in")
    with job.worker("sized") as w:
        for _ in w.track(range(4)):
            pass
    assert w.total == 4
    explicit = job.worker("explicit", total=99)
    for _ in explicit.track(iter(range(3)), total=3):  # a total given to track() is explicit
        pass
    assert explicit.total == 3
    assert progress_client.flush(30)
    eventually(lambda: row(job, "sized", state="done", total=4), 30, "sized done")


def test_an_unknown_total_shows_zero_percent_and_the_count(live_url):
    job = Job.create(live_url, desc="unknown total")
    w = job.worker("gen")
    for _ in w.track(i for i in range(3)):  # no len(): the total stays unknown
        pass
    w.close()
    assert w.flush(30)
    eventually(lambda: row(job, "gen", percent=0, desc="3 so far"), 30, "0 % and the count")
    w.done()
    w.close()
    assert w.flush(30)
    eventually(lambda: row(job, "gen", state="done", total=3), 30, "done at its count")
