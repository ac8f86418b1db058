"""A real Prometheus (Debian's package) scrapes the running service every second, loads the alert
rules of deploy/prometheus, and reads back through its query API what the test sent."""

from __future__ import annotations

import subprocess

import pytest
import requests

from tests.conftest import FAST
from tests.harness import ROOT, RedisServer, Service, free_port, wait_until
from tests.test_deploy_rules import require

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


class Prometheus:
    """A prometheus server of the test's own: temporary storage, loopback, 1 s scrapes."""

    def __init__(self, workdir, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{ALERTS}']\n"
            "scrape_configs:\n"
            f"  - job_name: progress\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Prometheus:
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                require("prometheus"),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, 30, 0.2, what="prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, (self.workdir / "prometheus.log").read_text()[-2000:]
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def value(self, query: str) -> float | None:
        """The instant value of a query with one series (None: no series yet)."""
        resp = requests.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5)
        result = resp.json()["data"]["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def equals(self, query: str, expected: float) -> None:
        wait_until(
            lambda: self.value(query) == expected,
            20,
            0.2,
            what=f"{query} == {expected} in Prometheus (now {self.value(query)})",
        )


@pytest.fixture
def service_and_prometheus(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = Service(redis_server.url, tmp_path / "svc", FAST)
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{service.port}")
    try:
        service.start("web", "ingest", "render", "beat")
        prometheus.start()
        yield service, prometheus
    finally:
        prometheus.stop()
        service.stop()
        redis_server.stop()


@pytest.mark.slow
def test_prometheus_reads_back_what_was_sent(service_and_prometheus, jobid):
    service, prometheus = service_and_prometheus
    prometheus.equals('up{job="progress"}', 1)

    created = service.get("create", jobid=jobid)
    assert created.status_code == 200, created.text
    for i in range(7):
        assert service.get("update", jobid=jobid, workid=f"w{i}", current=1, total=2).ok
    for _ in range(2):
        service.get("update", jobid=jobid, workid="w", current=-1, total=2)
    service.get("update", jobid=f"{jobid} never created", workid="w", current=1, total=2)
    batch = [{"jobid": jobid, "workid": f"b{i}", "current": 1, "total": 4} for i in range(5)]
    assert requests.post(f"{service.url}/progress/update", json=batch, timeout=10).ok

    prometheus.equals("progress_updates_accepted_total", 7 + 5)
    prometheus.equals('progress_updates_rejected_total{reason="invalid"}', 2)
    prometheus.equals('progress_updates_rejected_total{reason="unknown_job"}', 1)
    update_get = 'route="/progress/update", method="GET"'
    prometheus.equals(f"progress_http_request_duration_seconds_count{{{update_get}}}", 10)
    prometheus.equals(
        f'progress_http_request_duration_seconds_bucket{{{update_get}, le="+Inf"}}', 10
    )
    update_post = 'route="/progress/update", method="POST"'
    prometheus.equals(f"progress_http_request_duration_seconds_count{{{update_post}}}", 1)
    prometheus.equals('progress_http_request_duration_seconds_count{route="/progress/create"}', 1)
    assert prometheus.value(f"progress_http_request_duration_seconds_sum{{{update_get}}}") > 0
    prometheus.equals("progress_workers", 12)
    prometheus.equals("count(progress_queue_messages)", 3)
    assert prometheus.value("progress_redis_memory_used_bytes") > 0

    rules = requests.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = {rule["name"]: rule["health"] for group in rules for rule in group["rules"]}
    assert len(loaded) == 6 and set(loaded.values()) == {"ok"}, loaded
