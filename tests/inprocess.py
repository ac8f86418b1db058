"""The service in this process against a Redis of the test's own: the app for requests, and
the ingest step run here on demand (`report` returns once the updates are applied), with the
tasks it would send recorded rather than sent. For tests that must see each step happen."""

from __future__ import annotations

import falcon.testing

from api import create_app
from tasks.pipeline import NOTIFY, Pipeline
from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import Store, job_tag
from tests.conftest import RecordingBroker, quiet_log
from tests.harness import RedisServer


class InProcessService:
    def __init__(self, server: RedisServer, **env: str) -> None:
        """`env`: more PROGRESS_* variables for its settings."""
        self.settings = Settings.from_env(
            {"REDIS_URL": server.url, "PROGRESS_CREATE_RATE_LIMIT": "0", **env},
            public_url="http://progress.test",
        )
        self.store = Store(connect(self.settings))
        self.broker = RecordingBroker()
        self.pipeline = Pipeline(self.store, self.broker, self.settings)
        app = create_app(self.settings, self.store, self.pipeline, log_stream=quiet_log())
        self.client = falcon.testing.TestClient(app)

    def get(self, endpoint: str, **params) -> falcon.testing.Result:
        return self.client.simulate_get(f"/progress/{endpoint}", params=params)

    def accept(self, jobid: str, *reports: tuple) -> None:
        """Send updates (workid, current, total[, ok]) as one batch; they wait in the inbox."""
        batch = [
            {"jobid": jobid, "workid": r[0], "current": r[1], "total": r[2], "ok": int(r[3])}
            for r in (tuple(r) + (True,) * (4 - len(r)) for r in reports)
        ]
        resp = self.client.simulate_post("/progress/update", json=batch)
        assert resp.status_code == 202, resp.text

    def drain(self) -> None:
        while self.pipeline.drain():
            pass

    def report(self, jobid: str, *reports: tuple) -> None:
        """Send updates and apply them, as an ingest worker would."""
        self.accept(jobid, *reports)
        self.drain()

    def status(self, jobid: str) -> dict:
        resp = self.get("status", jobid=jobid, workers="none")
        assert resp.status_code == 200, resp.text
        return resp.json

    def hooks(self, jobid: str) -> list[str]:
        """The states of the job's completion hooks sent so far."""
        return [state for tag, state, _ in self.broker.named(NOTIFY) if tag == job_tag(jobid)]
