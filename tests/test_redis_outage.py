"""Redis goes away and comes back: every endpoint answers 503 quickly meanwhile, no process dies,
and afterwards everything works with no acknowledged update lost."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.conftest import FAST
from tests.harness import RedisServer, Service, wait_until


@pytest.fixture(scope="module")
def own_service(tmp_path_factory):
    redis_server = RedisServer(tmp_path_factory.mktemp("outage-redis")).start()
    service = Service(redis_server.url, tmp_path_factory.mktemp("outage-service"), FAST).start()
    yield redis_server, service
    service.stop()
    redis_server.stop()


# How a Celery worker or beat logs that Redis went away (kombu and redis-py's words).
LOST_REDIS = re.compile(r"Connection to broker lost|Connection refused|ConnectionError")

ENDPOINTS = [
    ("create", {"desc": "x"}),
    ("update", {"workid": "w", "current": 1, "total": 2}),
    ("status", {}),
    ("render", {}),
    ("show", {}),
    ("jobs", {}),
]


def test_outage_answers_503_fast_and_recovers(own_service):
    redis_server, service = own_service
    jobid = "outage-job"
    assert service.get("create", jobid=jobid).status_code == 200
    assert (
        service.get("update", jobid=jobid, workid="before", current=1, total=2).status_code == 202
    )
    wait_until(lambda: service.get("status", jobid=jobid).json()["workers"], 20, what="apply")

    background = [name for name in service.procs if name != "web"]
    assert {"ingest", "render", "beat"} <= set(background), service.procs
    log_sizes = {name: len(service.log(name)) for name in background}
    redis_server.stop()
    try:
        for endpoint, params in ENDPOINTS:
            started = time.monotonic()
            resp = requests.get(
                f"{service.url}/progress/{endpoint}", params={"jobid": jobid, **params}, timeout=10
            )
            elapsed = time.monotonic() - started
            assert resp.status_code == 503, (endpoint, resp.status_code, resp.text)
            assert resp.json()["title"] and resp.headers.get("Retry-After")
            assert elapsed < 2.0, (endpoint, elapsed)

        def noticed(name: str) -> bool:
            return bool(LOST_REDIS.search(service.log(name)[log_sizes[name] :]))

        wait_until(
            lambda: all(noticed(name) for name in background),
            20,
            what=f"each of {background} to log the lost connection",
        )
        time.sleep(1)  # and to go on trying: none of them gives up and exits
        for name, proc in service.procs.items():
            assert proc.poll() is None, f"{name} died during the outage"
    finally:
        redis_server.start()

    # Everything works again, by itself, and the update acknowledged before the outage is there.
    def recovered():
        resp = service.get("update", jobid=jobid, workid="after", current=2, total=2)
        return resp.status_code == 202

    wait_until(recovered, 30, what="updates to be accepted again")
    workers = wait_until(
        lambda: (
            {w["workid"] for w in service.get("status", jobid=jobid).json()["workers"]}
            == {"before", "after"}
        ),
        60,
        what="the update sent after the outage to be applied",
    )
    assert workers
    resp = service.get("render", jobid=jobid)
    assert resp.status_code == 200, resp.text
