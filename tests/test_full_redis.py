"""A Redis at its memory limit (maxmemory with noeviction, as the embedded one runs): requests
that need a write get a 503 that says why, never a 500; /healthz reports it; and no update that
was answered 2xx is lost: a batch that cannot be applied keeps its record until it can."""

from __future__ import annotations

import falcon.testing
import pytest

from api import create_app
from tasks.pipeline import APPLY_BATCH, Pipeline
from tasks.settings import Settings
from tasks.store import Store
from tests.conftest import RecordingBroker, quiet_log
from tests.harness import RedisServer, wait_until


@pytest.fixture
def full_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    client = server.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info("memory")["used_memory"] + 1_500_000)
    yield server
    server.stop()


def test_a_full_redis_answers_503_and_loses_nothing_acknowledged(full_redis):
    settings = Settings.from_env(
        {"REDIS_URL": full_redis.url}, redeliver_after=0.1, redis_timeout=10
    )
    store = Store(full_redis.client())
    pipeline = Pipeline(store, RecordingBroker(), settings)
    client = falcon.testing.TestClient(create_app(settings, store, pipeline, quiet_log()))
    assert client.simulate_get("/progress/create", params={"jobid": "j"}).status_code == 200

    acknowledged, refused = set(), []
    for n in range(400):  # 4 MB of descriptions: it fills up well before this ends
        batch = [
            {"jobid": "j", "workid": f"w{n}-{i}", "current": 1, "total": 2, "desc": "x" * 500}
            for i in range(20)
        ]
        resp = client.simulate_post("/progress/update", json=batch)
        assert resp.status_code in (202, 503), resp.text
        if resp.status_code == 202:
            acknowledged |= {u["workid"] for u in batch}
        else:
            refused.append(resp.json)
        try:
            pipeline.drain()  # what an ingest worker does; fails while Redis is full
        except Exception:
            pass
        if len(refused) >= 3:
            break
    assert refused, "Redis never filled up"
    assert "out of memory" in refused[0]["description"]
    assert len(acknowledged) > 100

    health = client.simulate_get("/healthz")
    assert health.status_code == 503, health.json
    assert any("refuses writes" in reason for reason in health.json["reasons"]), health.json
    assert client.simulate_get("/progress/status", params={"jobid": "j"}).status_code == 200

    # The operator makes room; beat's sweep sends the stranded batches and the waiting drain.
    store.redis.config_set("maxmemory", 0)
    wait_until(lambda: store.pending_updates() == 0 or _sweep(pipeline), 10, what="the sweep")
    stored = {w.workid for w in store.snapshot("j").workers}
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged updates"
    assert client.simulate_get("/healthz").json["redis"] == "ok"


def _sweep(pipeline: Pipeline) -> bool:
    """One pass of beat's sweep, running what it sends to the ingest queue in this process."""
    pipeline.broker.sent.clear()
    pipeline.sweep()
    for (batch_id,) in pipeline.broker.named(APPLY_BATCH):
        pipeline.apply_lost_batch(batch_id)
    while pipeline.drain():
        pass
    return False


def test_a_read_only_replica_answers_503_saying_so(tmp_path):
    """The service pointed at a replica (a failover gone wrong): reads work, writes get a 503
    naming the cause, and /healthz reports it."""
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica").start()
    try:
        settings = Settings.from_env({"REDIS_URL": primary.url}, redis_timeout=10)
        primary_store = Store(primary.client())
        Pipeline(primary_store, RecordingBroker(), settings).create_job("j", "", 600)
        replica.client().replicaof("127.0.0.1", primary.port)
        wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            20,
            what="the replica to sync",
        )
        store = Store(replica.client())
        client = falcon.testing.TestClient(
            create_app(settings, store, Pipeline(store, RecordingBroker(), settings), quiet_log())
        )
        assert client.simulate_get("/progress/status", params={"jobid": "j"}).status_code == 200
        params = {"jobid": "j", "workid": "w", "current": 1, "total": 2}
        resp = client.simulate_get("/progress/update", params=params)
        assert resp.status_code == 503, resp.text
        assert "read-only replica" in resp.json["description"]
        health = client.simulate_get("/healthz")
        assert health.status_code == 503 and health.json["redis"] == "refuses writes"
    finally:
        replica.client().replicaof("NO", "ONE")
        replica.stop()
        primary.stop()
