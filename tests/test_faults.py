"""Processes killed with SIGKILL in the middle of a stream of updates: every update that got a
2xx is applied once the process is back, and the chart catches up. Each update names a worker of
its own, so a single lost update is a missing row."""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import pytest
import requests

from tasks.broker import task_message
from tasks.pipeline import APPLY_BATCH, DRAIN, INGEST_QUEUE
from tasks.store import Store
from tests.conftest import FAST
from tests.harness import RedisServer, Service, wait_until

pytestmark = pytest.mark.slow

# A task's line in a worker's log (tasks/celery_app.py).
TASK_LOG_LINE = re.compile(r"event=task task=(\S+) id=(\S+) state=(\S+) ms=\S+ result=(\S+)")


@pytest.fixture
def service(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST).start()
    service.store = Store(redis_server.client())
    yield service
    service.stop()
    redis_server.stop()


class UpdateStream:
    """Sends updates, each for a new worker, from a few threads; remembers which got a 2xx."""

    def __init__(self, service: Service, jobid: str, threads: int = 4) -> None:
        self.url = f"{service.url}/progress/update"
        self.jobid = jobid
        self.acknowledged: set[str] = set()
        self.failed_requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(f"t{i}",)) for i in range(threads)
        ]

    def __enter__(self) -> UpdateStream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _send(self, prefix: str) -> None:
        n = 0
        with requests.Session() as session:
            while not self._stop.is_set():
                n += 1
                workid = f"{prefix}-{n}"
                params = {"jobid": self.jobid, "workid": workid, "current": n, "total": 10**6}
                try:
                    ok = session.get(self.url, params=params, timeout=5).status_code == 202
                except requests.RequestException:
                    ok = False
                with self._lock:
                    if ok:
                        self.acknowledged.add(workid)
                    else:
                        self.failed_requests += 1
                        time.sleep(0.05)


def stored_workers(service: Service, jobid: str) -> set[str]:
    snapshot = service.store.snapshot(jobid)
    return {w.workid for w in snapshot.workers} if snapshot else set()


def assert_nothing_lost_and_chart_catches_up(service: Service, jobid: str, acknowledged: set):
    assert len(acknowledged) > 50
    wait_until(
        lambda: acknowledged <= stored_workers(service, jobid),
        60,
        what=f"all {len(acknowledged)} acknowledged updates to be applied "
        f"(missing: {len(acknowledged - stored_workers(service, jobid))})",
    )

    def chart_is_current():
        snapshot = service.store.snapshot(jobid)
        chart = service.store.chart(jobid, with_png=False)
        return chart and chart.etag.split("-")[1] == str(snapshot.version)

    wait_until(chart_is_current, 60, what="the chart to show the last version")


@pytest.mark.parametrize("victim", ["ingest", "render", "web", "beat"])
def test_sigkill_mid_stream_loses_no_acknowledged_update(service, victim):
    jobid = f"fault-{victim}"
    assert service.get("create", jobid=jobid).status_code == 200
    with UpdateStream(service, jobid) as stream:
        time.sleep(1.5)
        service.kill(victim, signal.SIGKILL)
        time.sleep(1.5)
        service.start(victim)
        time.sleep(1.5)
    assert_nothing_lost_and_chart_catches_up(service, jobid, stream.acknowledged)


def test_ingest_killed_again_and_again_under_load_loses_nothing(service):
    """Celery's Redis transport takes a message off the queue and records it as unacknowledged
    in two steps; a worker killed between them loses the message. Our drains and batch records
    must make that harmless."""
    jobid = "fault-ingest-loop"
    assert service.get("create", jobid=jobid).status_code == 200
    with UpdateStream(service, jobid, threads=6) as stream:
        for i in range(6):
            time.sleep(0.3 + 0.17 * i)
            service.kill("ingest", signal.SIGKILL)
            service.start("ingest")
    assert_nothing_lost_and_chart_catches_up(service, jobid, stream.acknowledged)


def test_duplicate_drain_and_batch_messages_change_nothing(service):
    """Drains with nothing to claim and the apply of a batch whose record is gone (one applied
    already): what a re-sent or redelivered message amounts to. The ingest workers must take
    every one of them off the queue, run it, and leave the job exactly as it was."""
    jobid = "fault-duplicates"
    assert service.get("create", jobid=jobid).status_code == 200
    for i in range(20):
        params = {"jobid": jobid, "workid": f"w{i}", "current": i, "total": 20}
        assert service.get("update", **params).status_code == 202
    wait_until(lambda: len(stored_workers(service, jobid)) == 20, 30, what="20 workers applied")
    before = service.store.snapshot(jobid)

    sent: dict[str, str] = {}  # task id -> task name
    for _ in range(5):
        for name, args in [(DRAIN, ()), (APPLY_BATCH, ("no-such-batch",))]:
            message = task_message(name, args, INGEST_QUEUE)
            sent[json.loads(message)["headers"]["id"]] = name
            service.store.redis.lpush(INGEST_QUEUE, message)

    def finished() -> dict[str, tuple[str, str, str]]:
        """The sent tasks the ingest log shows finished: id -> (name, state, result)."""
        return {
            task_id: (name, state, result)
            for name, task_id, state, result in TASK_LOG_LINE.findall(service.log("ingest"))
            if task_id in sent
        }

    wait_until(
        lambda: service.store.redis.llen(INGEST_QUEUE) == 0 and len(finished()) == len(sent),
        30,
        what=f"the ingest queue to empty and the ingest log to show all {len(sent)} messages run",
    )
    assert finished() == {task_id: (name, "SUCCESS", "0") for task_id, name in sent.items()}
    assert service.store.snapshot(jobid) == before
