"""A store that lost its data, or another store, is never served as the truth in silence
(tasks/identity.py); and PROGRESS_MIN_REPLICAS answers only once replicas have the write."""

from __future__ import annotations

import os
import shutil
import signal
import time

import falcon.testing
import pytest
import requests

from api import create_app
from tasks.pipeline import Pipeline
from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import IDENTITY, INBOX, Store
from tests.conftest import FAST, RecordingBroker, quiet_log
from tests.harness import RedisServer, Service, wait_until
from tests.inprocess import InProcessService

RESET = "lost its data and was started afresh"


@pytest.fixture
def server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def update(service: InProcessService, jobid: str, workid: str = "w", current: int = 1):
    return service.get("update", jobid=jobid, workid=workid, current=current, total=10)


def test_a_new_store_is_given_an_identity_once(server):
    first, second = InProcessService(server), InProcessService(server)
    assert first.get("create", jobid="j").status_code == 200
    assert second.get("create", jobid="k").status_code == 200
    identity = server.client().hgetall(IDENTITY)
    assert identity[b"id"] and b"reset_at" not in identity
    assert first.pipeline.identity.current.id == second.pipeline.identity.current.id
    assert first.pipeline.identity.current.id == identity[b"id"].decode()


def test_a_store_that_lost_its_data_is_named_in_every_unknown_job_answer(server):
    service = InProcessService(server)
    assert service.get("create", jobid="before").status_code == 200
    assert update(service, "before").status_code == 202
    lost = service.pipeline.identity.current.id

    server.client().flushall()  # as a Redis restarted without its data

    resp = update(service, "before")
    assert resp.status_code == 404, resp.text
    assert RESET in resp.json["description"], resp.json
    assert server.client().llen(INBOX) == 0, "nothing is written for a job the store lost"
    for endpoint in ("status", "render", "show"):
        resp = service.get(endpoint, jobid="before")
        assert resp.status_code == 404 and RESET in resp.json["description"], endpoint
    # Another process that never knew the old store reads the reset from the store itself.
    newcomer = InProcessService(server)
    assert RESET in update(newcomer, "before").json["description"]

    store = service.client.simulate_get("/readyz").json["store"]
    assert store["lost_identity"] == lost and store["matches"] is True
    assert store["reset_at"] == pytest.approx(time.time(), abs=30)
    # The service works on the new store at once.
    assert service.get("create", jobid="after").status_code == 200
    assert update(service, "after").status_code == 202


def test_a_job_that_never_existed_is_not_blamed_on_a_reset(server):
    service = InProcessService(server)
    resp = update(service, "never")
    assert resp.status_code == 404 and RESET not in resp.json["description"]


def test_another_store_is_refused_and_named_nothing_written(server):
    service = InProcessService(server)
    assert service.get("create", jobid="j").status_code == 200
    assert update(service, "j").status_code == 202
    redis = server.client()
    inbox = redis.llen(INBOX)
    # The address now reaches a Redis holding another progress store (a wrong REDIS_URL).
    redis.hset(IDENTITY, mapping={"id": "someone-elses", "created": "1"})

    for resp in (update(service, "j", current=2), service.get("create", jobid="new")):
        assert resp.status_code == 503, resp.text
        assert "another progress store" in resp.json["description"]
        assert resp.headers.get("Retry-After")
    assert redis.llen(INBOX) == inbox and not redis.exists("progress:{bmV3}:meta")
    ready = service.client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert any("another progress store" in r for r in ready.json["reasons"])
    assert ready.json["store"] == {"identity": "someone-elses", "matches": False}


def test_the_store_coming_back_after_a_reset_is_adopted(server):
    """A Redis briefly served empty (and re-stamped), then synced back from its master: the
    old identity is one this process knows, so it is not 'another store'."""
    service = InProcessService(server)
    assert service.get("create", jobid="j").status_code == 200
    redis = server.client()
    original = redis.hgetall(IDENTITY)
    redis.flushall()
    assert service.get("create", jobid="k").status_code == 200  # re-stamped as reset
    redis.flushall()
    redis.hset(IDENTITY, mapping=original)
    assert service.get("create", jobid="j").status_code == 200


# -- PROGRESS_MIN_REPLICAS ------------------------------------------------------------------
def in_process_app(server: RedisServer, **overrides) -> falcon.testing.TestClient:
    settings = Settings.from_env({"REDIS_URL": server.url}, **overrides)
    store = Store(connect(settings))
    pipeline = Pipeline(store, RecordingBroker(), settings)
    return falcon.testing.TestClient(create_app(settings, store, pipeline, quiet_log()))


@pytest.fixture
def replicated(tmp_path):
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(
        tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port))
    )
    replica.start()
    wait_until(
        lambda: replica.client().info("replication")["master_link_status"] == "up", 20, what="sync"
    )
    yield master, replica
    if replica.proc and replica.proc.poll() is None:
        os.kill(replica.proc.pid, signal.SIGCONT)
    replica.stop()
    master.stop()


def test_min_replicas_not_reached_answers_503_and_the_retry_is_harmless(replicated):
    master, replica = replicated
    client = in_process_app(master, min_replicas=1, min_replicas_timeout=0.3)
    assert client.simulate_get("/progress/create", params={"jobid": "j"}).status_code == 200
    params = {"jobid": "j", "workid": "w", "current": 1, "total": 10}
    os.kill(replica.proc.pid, signal.SIGSTOP)  # the replica stops taking the stream
    try:
        started = time.monotonic()
        resp = client.simulate_get("/progress/update", params=params)
        assert time.monotonic() - started < 2
        assert resp.status_code == 503, resp.text
        assert "0 of 1 replicas" in resp.json["description"] and resp.headers["Retry-After"]
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert client.simulate_get("/progress/update", params=params).status_code == 202
    assert master.client().llen(INBOX) == 2  # both kept: the newer stamp wins when applied
    # Without the setting, the same stall does not hold updates up.
    unguarded = in_process_app(master)
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        assert unguarded.simulate_get("/progress/update", params=params).status_code == 202
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)


def test_min_replicas_is_validated():
    with pytest.raises(ValueError, match="PROGRESS_MIN_REPLICAS_TIMEOUT"):
        Settings.from_env({"PROGRESS_MIN_REPLICAS": "1", "PROGRESS_MIN_REPLICAS_TIMEOUT": "5"})
    with pytest.raises(ValueError, match="PROGRESS_MIN_REPLICAS must"):
        Settings.from_env({"PROGRESS_MIN_REPLICAS": "-1"})


# -- the processes as run -------------------------------------------------------------------
def lose_data(redis_server: RedisServer) -> None:
    """A crash without persistence: the same address comes back empty."""
    redis_server.proc.kill()
    redis_server.proc.wait()
    shutil.rmtree(redis_server.data_dir)
    redis_server.data_dir.mkdir()
    redis_server.start()


@pytest.mark.slow
def test_every_web_process_knows_its_store_before_its_first_write(tmp_path):
    """A web process that had written nothing when the store lost its data must still say so,
    not take the empty store for a new one (it did: found by CI, with two web processes)."""
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", {"PROGRESS_WEB_PROCESSES": "2"})
    try:
        service.start("web")
        wait_until(
            lambda: service.log("web").count("event=store_known") == 2,
            30,
            what="both web processes to read the store's identity",
        )
        lose_data(redis_server)

        def answered(workid: str):  # as a tuple: a Response of 404 is false
            resp = service.get("update", jobid="old", workid=workid, current=1, total=2)
            return (resp,) if resp.status_code != 503 else None

        for n in range(10):  # a new connection each: either process may answer
            (resp,) = wait_until(
                lambda n=n: answered(f"w{n}"), 30, what="the emptied store to answer"
            )
            assert resp.status_code == 404 and RESET in resp.json()["description"], resp.text
    finally:
        service.stop()
        redis_server.stop()


@pytest.mark.slow
def test_a_redis_restarted_without_its_data_is_named_by_the_running_service(tmp_path):
    """The Procfile's processes on a Redis that crashes and comes back empty: workers that
    report for the lost job are told why, /readyz reports the reset, a new job works."""
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    try:
        service.start()
        assert service.get("create", jobid="lost").status_code == 200
        assert (
            service.get("update", jobid="lost", workid="w", current=1, total=2).status_code == 202
        )
        lost = redis_server.client().hget(IDENTITY, "id").decode()

        lose_data(redis_server)

        def told_why():
            resp = service.get("update", jobid="lost", workid="w", current=2, total=2)
            return resp.status_code == 404 and resp.json()

        body = wait_until(told_why, 30, what="the lost job's updates to be answered")
        assert RESET in body["description"]
        ready = requests.get(f"{service.url}/readyz", timeout=5).json()
        assert ready["store"]["lost_identity"] == lost
        assert service.get("create", jobid="fresh").status_code == 200
        assert (
            service.get("update", jobid="fresh", workid="w", current=1, total=2).status_code == 202
        )
        wait_until(
            lambda: service.get("status", jobid="fresh").json()["workers"], 30, what="applied"
        )
        for name, proc in service.procs.items():
            assert proc.poll() is None, f"{name} exited"
    finally:
        service.stop()
        redis_server.stop()
