"""Operations: /healthz, /metrics and the request log, on real processes (the completion hook:
tests/test_hooks.py)."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import FAST
from tests.harness import RedisServer, Service, wait_until


def health(service: Service) -> tuple[int, dict]:
    resp = requests.get(f"{service.url}/healthz", timeout=5)
    return resp.status_code, resp.json()


@pytest.mark.slow
def test_healthz_names_the_missing_process_type(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    try:
        service.start("web", "ingest", "render")
        # Without beat nothing makes the workers check in: beat is named, not them.
        status, body = health(service)
        assert (status, body["missing"]) == (503, ["beat"])
        assert "beat" in body["reasons"][0] and "worker" not in body["reasons"][0]

        service.start("beat")
        wait_until(lambda: health(service)[0] == 200, 30, what="/healthz to turn healthy")

        service.kill("render")
        wait_until(lambda: health(service)[1]["missing"] == ["render"], 30, what="render named")
        service.start("render")
        wait_until(lambda: health(service)[0] == 200, 30, what="render to be seen again")

        service.kill("beat")
        wait_until(lambda: health(service)[1]["missing"] == ["beat"], 30, what="beat named")

        redis_server.stop()
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 503
    finally:
        service.stop()
        redis_server.stop()


@pytest.fixture
def quiet_service(tmp_path):
    """A service of its own: counts that no other test's requests can move."""
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST).start()
    yield service
    service.stop()
    redis_server.stop()


def test_metrics_count_updates_and_expose_queues(quiet_service, jobid):
    live_service = quiet_service
    live_service.get("create", jobid=jobid)
    for i in range(3):
        live_service.get("update", jobid=jobid, workid=f"w{i}", current=1, total=2)
    live_service.get("update", jobid=jobid, workid="w", current=-1, total=2)
    live_service.get("update", jobid="no such job here", workid="w", current=1, total=2)
    wait_until(lambda: len(live_service.get("status", jobid=jobid).json()["workers"]) == 3, 20)

    def metrics():
        text = requests.get(f"{live_service.url}/metrics", timeout=5).text
        return dict(
            line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
        )

    accepted = "progress_updates_accepted_total"
    invalid = 'progress_updates_rejected_total{reason="invalid"}'

    before = wait_until(
        lambda: float((m := metrics())[accepted]) == 3 and float(m[invalid]) == 1 and m,
        10,
        what="the first updates to be counted (counts reach Redis within a second)",
    )
    live_service.get("update", jobid=jobid, workid="w0", current=2, total=2)
    live_service.get("update", jobid=jobid, workid="w0", current="x", total=2)
    after = wait_until(
        lambda: (
            (m := metrics())[accepted] != before[accepted] and m[invalid] != before[invalid] and m
        ),
        10,
        what="the two updates to be counted",
    )
    assert float(after[accepted]) == float(before[accepted]) + 1
    assert float(after[invalid]) == float(before[invalid]) + 1
    assert float(after['progress_updates_rejected_total{reason="unknown_job"}']) >= 1
    for queue in ("ingest", "render", "inbox"):
        assert f'progress_queue_depth{{queue="{queue}"}}' in after
    assert float(after["progress_workers"]) >= 3 and float(after["progress_jobs"]) >= 1
    wait_until(lambda: float(metrics()["progress_apply_latency_seconds_count"]) > 0, 20)
    wait_until(lambda: float(metrics()["progress_render_seconds_count"]) > 0, 20)


def test_request_log_is_one_structured_line_without_secrets(live_service, jobid):
    live_service.get("create", jobid=jobid, secret="hunter2-very-secret")
    live_service.get(
        "update", jobid=jobid, workid="w", current=1, total=2, secret="hunter2-very-secret"
    )

    def logged():
        log = live_service.log("web")
        lines = [line for line in log.splitlines() if "event=request" in line and jobid in line]
        return (log, lines) if len(lines) >= 2 else None

    log, lines = wait_until(logged, 10, what="the request lines")
    assert any('path="/progress/update" status=202' in line for line in lines)
    assert "hunter2" not in log

    def drained() -> bool:  # the ingest worker may still be starting when the web answers
        lines = [line for line in live_service.log("ingest").splitlines() if "event=task" in line]
        return any("task=tasks.ingest.drain" in line and "state=SUCCESS" in line for line in lines)

    wait_until(drained, 30, what="the ingest task line")
