"""The pipeline's decisions, fast, on a Redis of their own with no worker: when a drain is
queued, when a render is requested and for when, and what beat's sweep sends again. The broker
records what it is asked to send instead of sending it."""

from __future__ import annotations

import dataclasses
import time

import pytest

from domain.model import AcceptOutcome, CreateOutcome
from tasks.pipeline import APPLY_BATCH, DRAIN, RENDER, Pipeline, WorkerReport
from tasks.settings import Settings
from tasks.store import Store, job_tag
from tests.conftest import RecordingBroker
from tests.harness import RedisServer


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("pipeline-redis")).start()
    yield server.client()
    server.stop()


@pytest.fixture
def pipeline(redis_client) -> Pipeline:
    redis_client.flushdb()
    settings = Settings(render_interval=1.0, redeliver_after=0.2)
    return Pipeline(Store(redis_client), RecordingBroker(), settings)


def report(jobid: str, workid: str, current: float = 1, total: float = 10) -> WorkerReport:
    return WorkerReport(jobid, workid, current, total, ok=True, desc="")


def draw(snapshot, now, stale_after) -> bytes:
    return f"png of version {snapshot.version}".encode()


def test_one_drain_is_queued_for_many_accepts_until_a_drain_claims(pipeline):
    pipeline.create_job("j", "", 60)
    for i in range(5):
        assert pipeline.accept([report("j", f"w{i}")]) == [AcceptOutcome.ACCEPTED]
    assert len(pipeline.broker.named(DRAIN)) == 1
    assert pipeline.drain() == 5
    pipeline.accept([report("j", "w9")])  # the inbox was emptied: a new drain is due
    assert len(pipeline.broker.named(DRAIN)) == 2


def test_a_drain_leaving_updates_behind_queues_the_next_before_applying(pipeline, monkeypatch):
    monkeypatch.setattr("tasks.pipeline.BATCH_LIMIT", 10)
    pipeline.create_job("j", "", 60)
    pipeline.accept([report("j", f"w{i}") for i in range(25)])
    assert pipeline.drain() == 10
    assert len(pipeline.broker.named(DRAIN)) == 2  # the accept's, and the next one
    assert pipeline.drain() == 10 and pipeline.drain() == 5
    assert len(pipeline.broker.named(DRAIN)) == 3  # none after the last: the inbox is empty


def test_refused_updates_queue_nothing(pipeline):
    assert pipeline.accept([report("no-such-job", "w")]) == [AcceptOutcome.UNKNOWN_JOB]
    assert pipeline.broker.sent == []


def test_create_sends_no_task(pipeline):
    assert pipeline.create_job("j", "", 60)[0] == CreateOutcome.CREATED
    assert pipeline.broker.sent == []  # its chart is the placeholder until the first update


def test_renders_are_requested_at_most_once_per_interval(pipeline):
    pipeline.create_job("j", "", 60)
    tag = job_tag("j")
    pipeline.accept([report("j", "first")])
    pipeline.drain()
    assert [s[3] for s in pipeline.broker.sent if s[0] == RENDER] == [0.0]  # never drawn: now
    pipeline.render(tag, draw)  # the first chart; its start is the last render start
    started = time.time()
    pipeline.broker.sent.clear()

    pipeline.accept([report("j", "a")])
    pipeline.drain()
    pipeline.accept([report("j", "b")])
    pipeline.drain()
    renders = [s for s in pipeline.broker.sent if s[0] == RENDER]
    assert len(renders) == 1, "the second change finds a render already due"
    countdown = renders[0][3]
    assert 0.5 < countdown <= 1.0 and countdown <= started + 1.0 - time.time() + 0.05


def test_a_change_during_a_render_requests_the_next_one(pipeline):
    pipeline.create_job("j", "", 60)
    tag = job_tag("j")
    pipeline.accept([report("j", "first")])
    pipeline.drain()
    pipeline.broker.sent.clear()

    def draw_while_an_update_lands(snapshot, now, stale_after):
        pipeline.accept([report("j", "late")])
        pipeline.drain()
        return draw(snapshot, now, stale_after)

    pipeline.render(tag, draw_while_an_update_lands)
    assert pipeline.broker.named(RENDER) == [(tag,)]


def test_an_unchanged_job_is_not_drawn_again(pipeline):
    pipeline.create_job("j", "", 60)
    tag = job_tag("j")
    pipeline.accept([report("j", "first")])
    pipeline.drain()
    drawn = []
    pipeline.render(tag, lambda s, now, stale_after: drawn.append(s) or b"png")
    pipeline.render(tag, lambda s, now, stale_after: drawn.append(s) or b"png")
    assert len(drawn) == 1


def test_the_sweep_sends_again_what_a_killed_process_left(pipeline):
    pipeline.create_job("j", "", 60)
    tag = job_tag("j")
    pipeline.accept([report("j", "first")])
    pipeline.drain()  # ... and its render was lost with the render worker
    pipeline.accept([report("j", "w")])
    # A drain claimed this batch and died before applying it; the render due was never run.
    entries, _ = pipeline.store.claim_inbox("lost", time.time(), 100, 200)
    assert len(entries) == 1
    pipeline.broker.sent.clear()
    assert pipeline.sweep() == {"batches": 0, "renders": 0}  # not overdue yet
    time.sleep(0.3)  # past redeliver_after
    assert pipeline.sweep() == {"batches": 1, "renders": 1}
    assert pipeline.broker.named(APPLY_BATCH) == [("lost",)]
    assert pipeline.broker.named(RENDER) == [(tag,)]
    assert pipeline.apply_lost_batch("lost") == 1
    assert pipeline.apply_lost_batch("lost") == 0  # already applied: nothing left to do
    assert pipeline.sweep() == {"batches": 0, "renders": 0}  # re-scored: not sent twice at once


def test_the_sweep_queues_a_drain_lost_with_its_message(pipeline):
    pipeline.create_job("j", "", 60)
    pipeline.accept([report("j", "w")])
    assert len(pipeline.broker.named(DRAIN)) == 1  # ... and that message is lost
    pipeline.sweep()
    assert len(pipeline.broker.named(DRAIN)) == 1  # the flag still says one is queued
    time.sleep(0.3)  # the flag expires after redeliver_after
    pipeline.sweep()
    assert len(pipeline.broker.named(DRAIN)) == 2


def test_a_worker_turning_stale_wakes_a_redraw(pipeline):
    settings = dataclasses.replace(pipeline.settings, stale_after=0.3)
    pipeline = Pipeline(pipeline.store, pipeline.broker, settings)
    pipeline.create_job("j", "", 60)
    tag = job_tag("j")
    pipeline.accept([report("j", "w")])
    pipeline.drain()
    pipeline.render(tag, draw)
    pipeline.broker.sent.clear()
    time.sleep(1.0)  # stale_after, and the half second the redraw time allows
    pipeline.sweep()
    assert pipeline.broker.named(RENDER) == [(tag,)]


def test_order_does_not_follow_the_web_hosts_clocks(pipeline, monkeypatch):
    """Two web hosts, the second's clock an hour behind (or stepped back): the update it
    accepts later still wins, because the order is taken in Redis."""
    other_host = Pipeline(pipeline.store, pipeline.broker, pipeline.settings)
    pipeline.create_job("j", "", 60)
    pipeline.accept([report("j", "w", current=1)])
    behind = time.time_ns() - 3600 * 10**9
    monkeypatch.setattr(time, "time_ns", lambda: behind)
    monkeypatch.setattr(time, "time", lambda: behind / 1e9)
    other_host.accept([report("j", "w", current=2)])
    monkeypatch.undo()
    while pipeline.drain():
        pass
    assert [w.current for w in pipeline.store.snapshot("j").workers] == [2]
