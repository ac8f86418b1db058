"""The store's rules on a real Redis: newer wins, re-create drops the past, expiry removes
everything, and applying the same batch twice changes nothing."""

from __future__ import annotations

import time
import uuid

from tasks.store import StampClock, Update, _keys, encode_row, job_tag


def accept(store, jobid, *rows, max_workers=100_000):
    """Record one batch of (workid, stamp, current) rows; return its id and statuses."""
    batch_id = uuid.uuid4().hex
    updates = [Update(jobid, w, encode_row(stamp, cur, 10, True, "")) for w, stamp, cur in rows]
    return batch_id, store.accept_updates(batch_id, updates, time.time(), max_workers)


def apply(store, batch_id):
    record = store.load_batch(batch_id)
    return store.apply_batch(batch_id, record, time.time()) if record else None


def currents(store, jobid):
    return {w.workid: w.current for w in store.snapshot(jobid).workers}


def test_newer_update_wins_whatever_the_order_of_apply(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    older, _ = accept(store, jobid, ("w", 1000, 1.0))
    newer, _ = accept(store, jobid, ("w", 2000, 2.0))
    apply(store, newer)
    apply(store, older)
    assert currents(store, jobid) == {"w": 2.0}


def test_within_one_batch_the_newest_row_wins(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    batch, _ = accept(store, jobid, ("w", 3000, 3.0), ("w", 1000, 1.0), ("v", 5, 5.0))
    apply(store, batch)
    assert currents(store, jobid) == {"w": 3.0, "v": 5.0}


def test_applying_a_batch_twice_changes_nothing(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    batch, _ = accept(store, jobid, ("w", 1000, 1.0))
    record = store.load_batch(batch)
    store.apply_batch(batch, record, time.time())
    applied = store.snapshot(jobid)
    assert applied.version == 1 and len(applied.workers) == 1
    assert store.load_batch(batch) is None  # cleared once applied
    store.apply_batch(batch, record, time.time())  # a redelivered copy of the task
    assert store.snapshot(jobid) == applied


def test_updates_accepted_before_a_recreate_never_reach_the_new_job(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "first")
    queued, statuses = accept(store, jobid, ("old", 1000, 1.0))
    assert statuses == [1]
    store.create_job(jobid, "", 60, time.time(), "second")
    fresh, _ = accept(store, jobid, ("new", 2000, 2.0))
    apply(store, fresh)
    apply(store, queued)
    assert currents(store, jobid) == {"new": 2.0}


def test_unknown_job_and_worker_limit_statuses(store, jobid):
    _, statuses = accept(store, jobid, ("w", 1, 1.0))
    assert statuses == [0]
    store.create_job(jobid, "", 60, time.time(), "inc")
    batch, statuses = accept(store, jobid, ("a", 1, 1.0), ("b", 2, 1.0), max_workers=1)
    assert statuses == [1, 1]  # the limit counts stored workers; both are new to an empty job
    apply(store, batch)
    _, statuses = accept(store, jobid, ("a", 3, 2.0), ("c", 4, 1.0), max_workers=2)
    assert statuses == [1, 2]  # a known worker may always report; a new one is refused


def test_ids_cannot_reach_other_jobs_keys(store):
    hostile = ["a}:workers", "{b}", "c:meta", "*", "d\\", "progress:{x}:meta"]
    for jobid in hostile:
        meta, workers, chart = _keys(job_tag(jobid))
        for key in (meta, workers, chart):
            assert key.count("{") == 1 and key.count("}") == 1
    assert len({job_tag(j) for j in hostile}) == len(hostile)


def test_expiry_deletes_every_key_of_the_job(store, jobid):
    now = time.time()
    tag = store.create_job(jobid, "", 1, now, "inc")
    batch, _ = accept(store, jobid, ("w", 1, 1.0))
    apply(store, batch)
    store.redis.hset(_keys(tag)[2], mapping={"etag": "x", "png": b"png"})
    assert store.expire_jobs(now + 0.5) == 0
    assert store.expire_jobs(now + 2) == 1
    assert list(store.redis.scan_iter(match=f"progress:{{{tag}}}*")) == []
    for zset in ("progress:jobs:expiry", "progress:jobs:recent", "progress:render:due"):
        assert store.redis.zscore(zset, tag) is None


def test_stamp_clock_strictly_increases():
    clock = StampClock()
    stamps = [clock() for _ in range(10_000)]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
