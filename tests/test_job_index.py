"""The summary and indexes the apply step keeps agree with what reading every row gives: the
same counts, percent, last update and ETA as domain.model.summarize over the full snapshot, at
any reading time (stale workers included), for jobs that expect a number of workers or not,
and pages that walk the workers in natural order."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.model import natural_bytes, natural_key, summarize
from tasks.pipeline import Pipeline, WorkerReport
from tasks.settings import Settings
from tasks.store import Store
from tests.conftest import RecordingBroker
from tests.harness import RedisServer

STALE_AFTER = 50.0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("index-redis")).start()
    yield Pipeline(Store(server.client()), RecordingBroker(), Settings())
    server.stop()


workids = st.sampled_from(["w1", "w2", "w10", "node2", "node10", "a", "b07", "b7", "٣", "x²"])
reports = st.lists(
    st.tuples(
        workids,
        st.sampled_from([0.0, 1.0, 3.0, 5.0, 10.0, 12.0]),  # current
        st.sampled_from([1.0, 5.0, 10.0]),  # total
        st.booleans() | st.just(True),  # ok, mostly
    ),
    min_size=1,
    max_size=25,
)


def close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(reports, min_size=1, max_size=3),
    later=st.sampled_from([0, 30, 80]),
    expected=st.none() | st.integers(1, 12),  # create's workers=: fewer or more than report
)
def test_the_kept_summary_is_the_summary_of_every_row(pipeline, batches, later, expected):
    store = pipeline.store
    store.redis.flushdb()
    created = time.time() - 20  # old enough for an ETA
    store.create_job("j", "", 3600, created, "inc", expected=expected)
    for batch in batches:
        pipeline.accept([WorkerReport("j", w, cur, tot, ok, "") for w, cur, tot, ok in batch])
        while pipeline.drain():
            pass
    now = time.time() + later  # later readings see workers turn stale
    info = store.job_info("j", now, STALE_AFTER)
    got = info.summary
    want = summarize(store.snapshot("j"), now, STALE_AFTER)
    assert (got.running, got.done, got.failed, got.stale, got.silent, got.complete) == (
        want.running,
        want.done,
        want.failed,
        want.stale,
        want.silent,
        want.complete,
    )
    assert close(got.percent, want.percent), (got, want)
    assert close(got.last_update, want.last_update)
    assert close(got.eta_seconds, want.eta_seconds), (got, want)
    assert info.expected == expected
    assert info.workers == len(store.snapshot("j").workers)


def test_pages_walk_every_worker_once_in_natural_order(pipeline):
    store = pipeline.store
    store.redis.flushdb()
    store.create_job("j", "", 3600, time.time(), "inc")
    ids = [f"node{i}" for i in range(250)] + ["a", "b07", "b7", "z"]
    pipeline.accept([WorkerReport("j", w, 1, 2, True, "") for w in ids])
    while pipeline.drain():
        pass
    seen, after = [], None
    while True:
        rows, after = store.worker_page("j", after, 100)
        seen += [r.workid for r in rows]
        if after is None:
            break
    assert seen == sorted(ids, key=natural_key)
    assert seen == [w.workid for w in store.snapshot("j").workers]


def test_problems_come_from_the_indexes(pipeline):
    store = pipeline.store
    store.redis.flushdb()
    store.create_job("j", "", 3600, time.time(), "inc")
    pipeline.accept([WorkerReport("j", f"w{i}", 1, 2, i % 3 != 0, "") for i in range(30)])
    while pipeline.drain():
        pass
    failed, stale = store.problems("j", time.time(), STALE_AFTER, limit=5)
    assert len(failed) == 5 and all(not w.ok for w in failed)
    assert stale == []
    failed, stale = store.problems("j", time.time() + 2 * STALE_AFTER, STALE_AFTER, limit=100)
    assert len(failed) == 10 and len(stale) == 20


@given(
    st.lists(
        st.text(
            st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=12
        ),
        min_size=2,
        max_size=30,
        unique=True,
    )
)
def test_natural_bytes_sort_as_natural_key(ids):
    assert sorted(ids, key=natural_bytes) == sorted(ids, key=natural_key)


@pytest.mark.parametrize("n", [7, 300])
def test_the_chart_drawn_from_the_compact_form_is_the_chart_of_every_row(pipeline, n):
    """A render reads each worker's packed bar from the order index, not its JSON row (and the
    rows only of a job small enough to print them): the same chart either way."""
    from renderer.chart import render_png
    from tasks.store import FULL_ROWS_MAX, job_tag

    store = pipeline.store
    store.redis.flushdb()
    store.create_job("j", "Compact", 3600, time.time() - 60, "inc")
    reports = [WorkerReport("j", f"w{i}", i % 7, 6, i % 11 != 5, f"d{i}") for i in range(n)]
    pipeline.accept(reports)
    while pipeline.drain():
        pass
    now = time.time() + 200  # some workers stale
    start = store.begin_render(job_tag("j"), now)
    assert len(start.snapshot.bars()) == n
    assert (len(start.snapshot.workers) == n) == (n <= FULL_ROWS_MAX)
    full = store.snapshot("j")
    assert render_png(start.snapshot, now=now, stale_after=STALE_AFTER) == render_png(
        full, now=now, stale_after=STALE_AFTER
    )
