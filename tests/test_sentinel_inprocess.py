"""The app in this process behind Sentinel: between the master's loss and the promotion every
write answers 503 saying why, with Retry-After; after it, 202 on the new master, nothing lost."""

from __future__ import annotations

import time

import falcon.testing
import pytest

from api import create_app
from tasks.pipeline import Pipeline
from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import Store
from tests.conftest import RecordingBroker, quiet_log
from tests.harness import SentinelGroup, wait_until


@pytest.fixture
def group(tmp_path):
    group = SentinelGroup(tmp_path / "sentinel", replicas=2).start()
    yield group
    group.stop()


@pytest.mark.timeout(90)
def test_writes_wait_out_a_failover_and_lose_nothing_acknowledged(group):
    settings = Settings.from_env({"REDIS_URL": group.url}, min_replicas=1)
    store = Store(connect(settings))
    pipeline = Pipeline(store, RecordingBroker(), settings)
    client = falcon.testing.TestClient(create_app(settings, store, pipeline, quiet_log()))
    assert client.simulate_get("/progress/create", params={"jobid": "j"}).status_code == 200
    old = group.master()
    old.proc.kill()
    old.proc.wait()
    acknowledged, refusals = [], set()
    deadline = time.monotonic() + 40
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        params = {"jobid": "j", "workid": f"w{len(acknowledged)}", "current": 1, "total": 2}
        resp = client.simulate_get("/progress/update", params=params)
        if resp.status_code == 202:
            acknowledged.append(params["workid"])
            continue
        assert resp.status_code == 503 and resp.headers["Retry-After"], resp.text
        refusals.add(resp.json["description"].split(";")[0])
        time.sleep(0.1)
    assert len(acknowledged) == 20, refusals
    assert group.master_port() != old.port
    assert any("without a master" in r or "unreachable" in r for r in refusals), refusals
    # Every acknowledged update is in the new master's inbox (no ingest runs in this test).
    entries = wait_until(lambda: group.master().client().lrange("progress:inbox", 0, -1), 5)
    assert {e.split(b"\n")[2].decode() for e in entries} >= set(acknowledged)
