"""The store's rules on a real Redis: newer wins, re-create drops the past, expiry removes
everything, and applying the same batch twice changes nothing."""

from __future__ import annotations

import time
import uuid

import pytest

from domain.model import AcceptOutcome
from tasks.store import APPLY_PART, AcceptLimits, Store, Update, _keys, encode_row, job_tag
from tests.harness import RedisServer


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store on a Redis of its own: no live ingest worker drains this inbox."""
    server = RedisServer(tmp_path_factory.mktemp("store-redis")).start()
    yield Store(server.client())
    server.stop()


DRAIN_TTL_MS = 60_000


def accept(
    store, jobid, *rows, max_workers=100_000, max_inbox=10**6, max_rows=10**7, all_or_nothing=False
):
    """Accept (workid, current) rows, in this order; return the outcomes."""
    updates = [Update(jobid, w, encode_row(cur, 10, True, "")) for w, cur in rows]
    outcomes, _ = store.accept_updates(
        updates,
        time.time(),
        AcceptLimits(max_workers, inbox=max_inbox, worker_rows=max_rows),
        DRAIN_TTL_MS,
        all_or_nothing,
    )
    return outcomes


def claim(store):
    """Claim everything in the inbox as one batch: (batch id, entries)."""
    batch_id = uuid.uuid4().hex
    entries, _ = store.claim_inbox(batch_id, time.time(), 10_000, DRAIN_TTL_MS)
    return batch_id, entries


def apply(store, batch_id, entries):
    return store.apply_batch(batch_id, entries, time.time())


def currents(store, jobid):
    return {w.workid: w.current for w in store.snapshot(jobid).workers}


def test_newer_update_wins_whatever_the_order_of_apply(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    accept(store, jobid, ("w", 1.0))
    older = claim(store)
    accept(store, jobid, ("w", 2.0))
    newer = claim(store)
    apply(store, *newer)
    apply(store, *older)
    assert currents(store, jobid) == {"w": 2.0}


def test_within_one_batch_the_last_accepted_row_wins(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    accept(store, jobid, ("w", 3.0), ("v", 5.0))
    accept(store, jobid, ("w", 1.0))
    apply(store, *claim(store))
    assert currents(store, jobid) == {"w": 1.0, "v": 5.0}


def test_applying_a_batch_twice_changes_nothing(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    accept(store, jobid, ("w", 1.0))
    batch_id, entries = claim(store)
    assert store.load_batch(batch_id) == entries  # claimed: recorded until applied
    apply(store, batch_id, entries)
    applied = store.snapshot(jobid)
    assert applied.version == 1 and len(applied.workers) == 1
    assert store.load_batch(batch_id) is None  # cleared once applied
    apply(store, batch_id, entries)  # a redelivered copy of the task
    assert store.snapshot(jobid) == applied


def test_updates_accepted_before_a_recreate_never_reach_the_new_job(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "first")
    assert accept(store, jobid, ("old", 1.0)) == [1]
    queued = claim(store)
    store.create_job(jobid, "", 60, time.time(), "second")
    accept(store, jobid, ("new", 2.0))
    apply(store, *claim(store))
    apply(store, *queued)
    assert currents(store, jobid) == {"new": 2.0}


def test_unknown_job_and_worker_limit_statuses(store, jobid):
    assert accept(store, jobid, ("w", 1.0)) == [0]
    store.create_job(jobid, "", 60, time.time(), "inc")
    # the limit counts the new workers of the call too: the second is one too many
    assert accept(store, jobid, ("a", 1.0), ("b", 1.0), ("a", 3.0), max_workers=1) == [1, 2, 1]
    apply(store, *claim(store))
    assert accept(store, jobid, ("a", 2.0), ("b", 1.0), ("c", 1.0), max_workers=2) == [1, 1, 2]
    apply(store, *claim(store))
    assert currents(store, jobid) == {"a": 2.0, "b": 1.0}


def test_all_or_nothing_refuses_the_whole_batch(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc")
    statuses = accept(store, jobid, ("a", 1.0), ("b", 1.0), max_workers=2)
    apply(store, *claim(store))
    statuses = accept(store, jobid, ("a", 5.0), ("new", 1.0), max_workers=2, all_or_nothing=True)
    assert statuses == [1, 2]
    assert store.redis.llen("progress:inbox") == 0
    assert currents(store, jobid) == {"a": 1.0, "b": 1.0}


def test_ids_cannot_reach_other_jobs_keys(store):
    hostile = ["a}:workers", "{b}", "c:meta", "*", "d\\", "progress:{x}:meta"]
    for jobid in hostile:
        meta, workers, chart = _keys(job_tag(jobid))
        for key in (meta, workers, chart):
            assert key.count("{") == 1 and key.count("}") == 1
    assert len({job_tag(j) for j in hostile}) == len(hostile)


def test_expiry_deletes_every_key_of_the_job(store, jobid):
    now = time.time()
    store.create_job(jobid, "", 1, now, "inc")
    tag = job_tag(jobid)
    accept(store, jobid, ("w", 1.0))
    apply(store, *claim(store))
    store.redis.hset(_keys(tag)[2], mapping={"etag": "x", "png": b"png"})
    assert store.expire_jobs(now + 0.5) == 0
    assert store.expire_jobs(now + 2) == 1
    assert list(store.redis.scan_iter(match=f"progress:{{{tag}}}*")) == []
    for zset in ("progress:jobs:expiry", "progress:jobs:recent", "progress:render:due"):
        assert store.redis.zscore(zset, tag) is None


def test_a_full_inbox_refuses_updates_until_ingest_catches_up(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    store.redis.delete("progress:inbox")
    assert accept(store, jobid, ("a", 1.0), ("b", 1.0), max_inbox=2) == [1, 1]
    assert accept(store, jobid, ("c", 1.0), max_inbox=2) == [AcceptOutcome.BACKLOG]
    apply(store, *claim(store))
    assert accept(store, jobid, ("c", 1.0), max_inbox=2) == [1]
    apply(store, *claim(store))


def test_past_the_service_wide_row_limit_only_known_workers_are_accepted(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    accept(store, jobid, ("a", 1.0))
    apply(store, *claim(store))
    rows = int(store.redis.hget("progress:stats", "workers"))
    assert accept(store, jobid, ("a", 2.0), ("new", 1.0), max_rows=rows) == [
        AcceptOutcome.ACCEPTED,
        AcceptOutcome.STORAGE_FULL,
    ]
    apply(store, *claim(store))


def test_a_batch_is_applied_in_parts_and_its_record_cleared_with_the_last(store, jobid):
    store.create_job(jobid, "", 60, time.time(), "inc1")
    other = f"{jobid}-other"
    store.create_job(other, "", 60, time.time(), "inc1")
    accept(store, jobid, *[(f"w{i}", 1.0) for i in range(APPLY_PART * 2 + 10)])
    accept(store, other, ("x", 1.0))
    batch_id, entries = claim(store)
    apply(store, batch_id, entries)
    assert len(currents(store, jobid)) == APPLY_PART * 2 + 10
    assert currents(store, other) == {"x": 1.0}
    assert store.load_batch(batch_id) is None
    assert store.redis.zscore("progress:batches:due", batch_id) is None
