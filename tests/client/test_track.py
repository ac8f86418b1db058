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


def progress_seen_while_tracking(worker, *iterables) -> list[tuple]:
    """(current, total) of the handle at each item, for each iterable tracked in turn."""
    seen = []
    for iterable in iterables:
        for _ in worker.track(iterable):
            seen.append((worker.current, worker.total))
    return seen


def test_a_total_filled_in_by_track_grows_with_the_next_track(make_server):
    """Two sized iterables tracked one after the other, no total declared: the second extends
    the first's guess, so the worker never reads done mid-work (it did: 4 of 3)."""
    server = make_server()
    w = Job(server.url, "two tracks").worker("w", min_interval=0)
    seen = progress_seen_while_tracking(w, range(3), ["a", "b", "c"])
    assert all(current < total for current, total in seen), seen
    assert (w.current, w.total) == (6, 6)
    w.close()
    assert all(int(u["current"]) <= int(u["total"]) for u in server.updates("w"))


@pytest.mark.parametrize("declare", ["worker", "update", "track"])
def test_a_declared_total_is_not_extended_by_a_later_track(make_server, declare):
    server = make_server()
    job = Job(server.url, "declared then tracked")
    w = job.worker("w", total=10 if declare == "worker" else None, min_interval=0)
    if declare == "update":
        w.update(total=10)
    elif declare == "track":
        for _ in w.track(iter(range(2)), total=10):
            pass
    progress_seen_while_tracking(w, range(3), range(3))
    assert w.total == 10
    w.close(0)
