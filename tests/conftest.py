"""Shared fixtures: a throwaway Redis, the in-process app, and the live service."""

from __future__ import annotations

import os
import uuid

import falcon.testing
import pytest

from api import create_app
from tasks.broker import Broker
from tasks.celery_app import app as celery_app
from tasks.celery_app import configure
from tasks.pipeline import RENDER_QUEUE, Pipeline
from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import Store
from tests.harness import RedisServer, Service, free_port, fresh_clone

# Loopback ports the hook tests' receivers listen on, each used by one receiver only (a retry
# of one test's hook must not reach the next test's receiver): the hook may reach 127.0.0.1 on
# these ports alone.
HOOK_PORTS = list(dict.fromkeys(free_port() for _ in range(12)))

# Short intervals so that tests of timing behaviour finish quickly.
FAST = {
    "PROGRESS_RENDER_INTERVAL": "0.5",
    "PROGRESS_EXPIRE_EVERY": "1",
    "PROGRESS_SWEEP_EVERY": "1",
    "PROGRESS_REDELIVER_AFTER": "5",
    "PROGRESS_CREATE_RATE_LIMIT": "0",  # the tests create thousands of jobs from one address
    "PROGRESS_MAX_JOBS_PER_ADDRESS": "1000000",  # (and hold them, all from 127.0.0.1)
    "PROGRESS_NOTIFY_HOSTS": ",".join(f"127.0.0.1:{port}" for port in HOOK_PORTS),
}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(redis_server) -> Settings:
    return Settings.from_env(
        {"REDIS_URL": redis_server.url, **FAST},
        public_url="http://progress.test",
    )


@pytest.fixture(scope="session")
def store(settings) -> Store:
    return Store(connect(settings))


@pytest.fixture(scope="session")
def client(settings, store) -> falcon.testing.TestClient:
    """The app in this process; what it enqueues goes to the session's Redis."""
    configure(celery_app, settings)
    return falcon.testing.TestClient(create_app(settings, store, log_stream=quiet_log()))


def quiet_log():
    """Where in-process apps write their request log: nowhere, so pytest's output stays clean."""
    return open(os.devnull, "w")  # noqa: SIM115 - lives as long as the app


class BrokerWithoutRenders(Broker):
    """Sends everything but renders: for tests that create thousands of jobs, whose first-chart
    renders would otherwise queue up for the live service's render workers that later tests
    share. Create answers the same either way."""

    def send(self, task_name: str, args: tuple, queue: str, countdown: float = 0.0) -> None:
        if queue != RENDER_QUEUE:
            super().send(task_name, args, queue, countdown)


class RecordingBroker(Broker):
    """Records what it is asked to send instead of sending it: for tests of the pipeline's
    decisions, run in the test's own process."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple, str, float]] = []

    def send(self, task_name: str, args: tuple, queue: str, countdown: float = 0.0) -> None:
        self.sent.append((task_name, args, queue, countdown))

    def named(self, task_name: str) -> list[tuple]:
        return [args for name, args, _, _ in self.sent if name == task_name]


@pytest.fixture(scope="session")
def client_without_renders(settings, store) -> falcon.testing.TestClient:
    pipeline = Pipeline(store, BrokerWithoutRenders(store.redis), settings)
    return falcon.testing.TestClient(create_app(settings, store, pipeline, log_stream=quiet_log()))


@pytest.fixture(scope="session")
def live_service(redis_server, tmp_path_factory):
    """The real processes of the Procfile, sharing the session's Redis."""
    service = Service(redis_server.url, tmp_path_factory.mktemp("service"), FAST).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def deployed_clone(tmp_path_factory):
    """A fresh clone of the committed tree, installed by `make install`: what an operator has
    after following the README (about a minute, once per test session)."""
    return fresh_clone(tmp_path_factory.mktemp("deploy") / "progress")


@pytest.fixture
def jobid() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"
