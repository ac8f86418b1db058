"""Operations: /healthz, /metrics, the request log, and the completion hook, on real processes."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
import requests

from tasks.celery_app import app as celery_app
from tasks.celery_app import configure
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
    task_lines = [line for line in live_service.log("ingest").splitlines() if "event=task" in line]
    assert any("task=tasks.ingest.drain" in line and "state=SUCCESS" in line for line in task_lines)


@pytest.fixture
def receiver():
    """A real HTTP server on loopback that records what it is POSTed."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_completion_hook_is_posted_once_when_all_workers_are_done(live_service, jobid, receiver):
    url, received = receiver
    assert live_service.get("create", jobid=jobid, notify=url).status_code == 200
    live_service.get("update", jobid=jobid, workid="a", current=1, total=2)
    live_service.get("update", jobid=jobid, workid="b", current=2, total=2)
    live_service.get("update", jobid=jobid, workid="a", current=2, total=2)
    live_service.get("update", jobid=jobid, workid="a", current=2, total=2, desc="again")
    wait_until(lambda: received, 30, what="the completion hook")
    wait_until(lambda: live_service.get("status", jobid=jobid).json()["workers"][0]["desc"], 20)
    assert received == [{"jobid": jobid, "state": "done", "desc": "", "workers": 2, "failed": []}]


def test_completion_hook_fires_on_first_failure(live_service, jobid, receiver):
    url, received = receiver
    live_service.get("create", jobid=jobid, notify=url)
    live_service.get("update", jobid=jobid, workid="a", current=1, total=5)
    live_service.get("update", jobid=jobid, workid="b", current=1, total=5, ok=0)
    wait_until(lambda: received, 30, what="the failure hook")
    assert received[0]["state"] == "failed" and received[0]["failed"] == ["b"]


@pytest.mark.parametrize(
    ("url", "words"),
    [("http://example.org/hook", "not among"), ("ftp://127.0.0.1/x", "http or https")],
)
def test_notify_only_to_allowed_hosts(live_service, jobid, url, words):
    resp = live_service.get("create", jobid=jobid, notify=url)
    assert resp.status_code == 400 and words in resp.json()["description"]


def test_hook_task_refuses_hosts_not_allowed_when_it_sends(live_service, settings, receiver):
    """A notify message placed on the queue by anyone but create (which checks the URL) must
    not reach a host outside PROGRESS_NOTIFY_HOSTS. The receiver answers on both names, and the
    render worker runs messages in order: once the allowed one arrives, the other was handled."""
    url, received = receiver
    configure(celery_app, settings)
    not_allowed = url.replace("127.0.0.1", "localhost")  # FAST allows only 127.0.0.1
    celery_app.send_task("tasks.notify.notify_finished", args=("dGFn", "done", not_allowed))
    celery_app.send_task("tasks.notify.notify_finished", args=("dGFn", "failed", url))
    wait_until(lambda: received, 30, what="the allowed hook")
    assert [r["state"] for r in received] == ["failed"]
    assert "event=notify_refused" in live_service.log("render")
