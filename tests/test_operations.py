"""Operations: /livez, /readyz (/healthz), /metrics and the request log, on real processes (the
completion hook: tests/test_hooks.py)."""

from __future__ import annotations

import pytest
import requests

from tasks.pipeline import NOTIFY_QUEUE
from tasks.store import STATS
from tests.conftest import FAST
from tests.harness import RedisServer, Service, wait_until


def health(service: Service, path: str = "/healthz") -> tuple[int, dict]:
    resp = requests.get(f"{service.url}{path}", timeout=5)
    return resp.status_code, resp.json()


@pytest.mark.slow
def test_livez_stays_up_while_readyz_names_the_dead_ingest(tmp_path):
    """An orchestrator probing /livez must not restart the web because ingest is down."""
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    try:
        service.start()
        wait_until(lambda: health(service, "/readyz")[0] == 200, 30, what="/readyz to be ready")
        assert health(service, "/livez") == (200, {"status": "ok"})

        service.kill("ingest")

        def ingest_named(path: str = "/readyz"):
            # Render goes unseen too a little later: beat's sweep reaches it through ingest.
            status, body = health(service, path)
            return status == 503 and "ingest" in body["missing"] and body

        body = wait_until(ingest_named, 40, what="/readyz to name ingest")
        assert any("no ingest worker" in reason for reason in body["reasons"])
        assert health(service, "/livez") == (200, {"status": "ok"})
        assert ingest_named("/healthz"), "/healthz is /readyz under its older name"

        redis_server.stop()  # /livez calls nothing: it answers even without Redis
        assert health(service, "/livez") == (200, {"status": "ok"})
        assert requests.get(f"{service.url}/readyz", timeout=5).status_code == 503
    finally:
        service.stop()
        redis_server.stop()


@pytest.mark.slow
def test_with_hooks_off_no_notify_worker_is_needed(tmp_path):
    """Completion hooks are off by default (no PROGRESS_NOTIFY_HOSTS): a deployment that runs
    no notify process is ready, and nothing piles up on the notify queue."""
    redis_server = RedisServer(tmp_path / "redis").start()
    hooks_off = {k: v for k, v in FAST.items() if k != "PROGRESS_NOTIFY_HOSTS"}
    service = Service(redis_server.url, tmp_path / "svc", hooks_off)
    try:
        service.start("web", "ingest", "render", "beat")
        status, body = wait_until(
            lambda: (h := health(service, "/readyz"))[0] == 200 and h, 30, what="ready"
        )
        assert "notify" not in body["seconds_since_seen"]

        def last_sweep() -> float:  # the sweep records the ingest worker's heartbeat
            return float(redis_server.client().hget(STATS, "heartbeat:ingest") or 0)

        first = last_sweep()
        wait_until(lambda: last_sweep() >= first + 3, 30, what="three more sweeps (1 s apart)")
        assert redis_server.client().llen(NOTIFY_QUEUE) == 0
        assert health(service, "/readyz")[0] == 200
    finally:
        service.stop()
        redis_server.stop()


@pytest.mark.slow
def test_healthz_names_the_missing_process_type(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    try:
        service.start("web", "ingest", "render", "notify")
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

        service.kill("notify")
        wait_until(lambda: health(service)[1]["missing"] == ["notify"], 30, what="notify named")
        service.start("notify")
        wait_until(lambda: health(service)[0] == 200, 30, what="notify to be seen again")

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
    for queue in ("ingest", "render", "notify"):
        assert f'progress_queue_messages{{queue="{queue}"}}' in after
    for backlog in ("progress_inbox_updates", "progress_claimed_batches", "progress_renders_due"):
        assert float(after[backlog]) >= 0
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
    assert any(
        'route=/progress/update path="/progress/update" status=202' in line for line in lines
    )
    assert "hunter2" not in log

    def drained() -> bool:  # the ingest worker may still be starting when the web answers
        lines = [line for line in live_service.log("ingest").splitlines() if "event=task" in line]
        return any("task=tasks.ingest.drain" in line and "state=SUCCESS" in line for line in lines)

    wait_until(drained, 30, what="the ingest task line")
