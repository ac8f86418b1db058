"""The service as an operator deploys it: each Procfile line run as written, from a fresh clone
of the committed tree with nothing done to it (the lines install the virtualenv themselves), with
nothing in the environment but REDIS_URL and PORT, so every setting is at its default. Expiry,
re-sending after a kill and /healthz must work there, and no process may need a folder or file
that a fresh clone lacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.harness import RedisServer, Service, fresh_clone, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # waits on default periods

# The defaults this test waits on (tasks.settings): beat's sweep every 5 s, expiry every 60 s,
# lost work re-sent after 20 s, a process type missing from /healthz after 3 sweeps + 10 s.
EXPIRY_WAIT = 60 + 30
RESEND_WAIT = 20 + 5 + 30
HEALTH_WAIT = 3 * 5 + 10 + 15


@pytest.fixture
def bare_clone(tmp_path) -> Path:
    return fresh_clone(tmp_path / "clone", install=False)


@pytest.fixture
def deployed(bare_clone, tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(
        redis_server.url,
        tmp_path / "svc",
        root=bare_clone,
        inherit_env=False,
        start_timeout=300,  # the first line to start creates the virtualenv (make install)
    )
    service.redis = redis_server.client()
    yield service
    service.stop()
    redis_server.stop()


def healthz(service: Service) -> tuple[int, dict]:
    resp = requests.get(f"{service.url}/healthz", timeout=5)
    return resp.status_code, resp.json()


def logs(service: Service) -> str:
    return "\n".join(f"--- {n}\n{service.log(n)[-3000:]}" for n in ("web", "ingest", "beat"))


def test_procfile_lines_work_from_a_fresh_clone(deployed, bare_clone):
    service = deployed.start()
    status, body = wait_until(
        lambda: (h := healthz(service))[0] == 200 and h, 30, what=f"healthy\n{logs(service)}"
    )
    assert body["missing"] == []

    # A job that expires at beat's next expiry run (every 60 s by default).
    short = "deploy:short-lived"
    assert service.get("create", jobid=short, maxage=1).status_code == 200
    assert service.get("update", jobid=short, workid="w", current=1, total=2).status_code == 202

    # Ingest killed after taking the drain message off the broker's queue (messages are
    # acknowledged on receipt): the updates wait in the inbox with their drain lost, and only
    # beat's sweep queues another once the drain flag has expired (redeliver_after).
    jobid = "deploy:resend"
    service.get("create", jobid=jobid)
    service.get("update", jobid=jobid, workid="first", current=1, total=2)

    def reported() -> int:
        return service.get("status", jobid=jobid, workers="none").json()["workers_reported"]

    wait_until(lambda: reported() == 1, 30, what="applied, so that no drain is in flight")
    service.kill("ingest")
    for i in range(20):
        resp = service.get("update", jobid=jobid, workid=f"w{i}", current=i, total=20)
        assert resp.status_code == 202
    assert service.redis.delete("ingest") == 1  # the drain message, lost with the process
    service.start("ingest")
    wait_until(lambda: reported() == 21, RESEND_WAIT, what=f"the lost drain\n{logs(service)}")

    # Beat gone: /healthz says so, naming beat and not the workers it wakes.
    service.kill("beat")
    status, body = wait_until(
        lambda: (h := healthz(service))[0] == 503 and h, HEALTH_WAIT, what="beat to be missed"
    )
    assert body["missing"] == ["beat"], body
    service.start("beat")
    wait_until(lambda: healthz(service)[0] == 200, 30, what="beat to be seen again")

    wait_until(
        lambda: service.get("status", jobid=short).status_code == 404,
        EXPIRY_WAIT,
        what=f"the short-lived job to expire\n{logs(service)}",
    )

    # Nothing was written into the clone: no var/, no schedule file.
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"],
        cwd=bare_clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    written = [
        line
        for line in untracked
        # what installing leaves: the virtualenv, its lock (bin/in-venv), bytecode, metadata
        if line
        and not any(p in line for p in (".venv/", ".venv.lock", "__pycache__/", ".egg-info/"))
    ]
    assert written == []
