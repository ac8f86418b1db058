"""Storage is bounded: past each limit an operator can set, a clear 503 with Retry-After (or a
429 for one client's creates), and nothing stored changes; and create answers at once, with a
placeholder chart, without waiting for or queueing a render."""

from __future__ import annotations

import dataclasses
import io

import falcon.testing
import pytest
from PIL import Image

from api import create_app
from renderer.chart import render_png
from tasks.pipeline import RENDER, Pipeline
from tasks.settings import Settings
from tasks.store import Store
from tests.conftest import RecordingBroker, quiet_log
from tests.harness import RedisServer, wait_until


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("limits-redis")).start()
    yield server
    server.stop()


def service(redis_server, **limits):
    """An app in this process on a flushed Redis, with `limits` as its settings, and the
    pipeline to run what an ingest worker would."""
    redis_server.client().flushdb()
    settings = dataclasses.replace(
        Settings.from_env({"REDIS_URL": redis_server.url}), create_rate_limit=0, **limits
    )
    store = Store(redis_server.client())
    pipeline = Pipeline(store, RecordingBroker(), settings)
    app = create_app(settings, store, pipeline, log_stream=quiet_log())
    return falcon.testing.TestClient(app), pipeline


def create(client, jobid, **params):
    return client.simulate_get("/progress/create", params={"jobid": jobid, **params})


def update(client, jobid, workid, current=1):
    params = {"jobid": jobid, "workid": workid, "current": current, "total": 2}
    return client.simulate_get("/progress/update", params=params)


def assert_service_full(resp, setting: str) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"]
    assert setting in resp.json["description"]


def test_jobs_past_max_jobs_are_refused_but_existing_ones_can_be_recreated(redis_server):
    client, _ = service(redis_server, max_jobs=2)
    assert create(client, "a").status_code == 200
    assert create(client, "b").status_code == 200
    assert_service_full(create(client, "c"), "PROGRESS_MAX_JOBS")
    assert client.simulate_get("/progress/status", params={"jobid": "c"}).status_code == 404
    assert create(client, "a", desc="again").status_code == 200


def test_creates_from_one_address_are_rate_limited(redis_server):
    redis_server.client().flushdb()
    settings = Settings.from_env({"REDIS_URL": redis_server.url, "PROGRESS_CREATE_RATE_LIMIT": "1"})
    limited = falcon.testing.TestClient(create_app(settings, log_stream=quiet_log()))
    answers = [create(limited, f"r{i}").status_code for i in range(40)]
    assert answers[:30] == [200] * 30  # a burst of 30 × the rate
    assert 429 in answers[30:]
    other = limited.simulate_get(
        "/progress/create", params={"jobid": "other"}, remote_addr="10.9.9.9"
    )
    assert other.status_code == 200  # another address has its own bucket
    refused = limited.simulate_get("/progress/create", params={"jobid": "r-late"})
    assert "PROGRESS_CREATE_RATE_LIMIT" in refused.json["description"]
    assert refused.headers["retry-after"]


def test_updates_get_503_while_ingest_is_behind_and_202_once_it_caught_up(redis_server):
    client, pipeline = service(redis_server, max_inbox=3)
    create(client, "j")
    for i in range(3):
        assert update(client, "j", f"w{i}").status_code == 202
    refused = update(client, "j", "w3")
    assert_service_full(refused, "PROGRESS_MAX_INBOX")
    pipeline.drain()
    assert update(client, "j", "w3").status_code == 202
    pipeline.drain()
    assert {w.workid for w in pipeline.store.snapshot("j").workers} == {"w0", "w1", "w2", "w3"}


def test_new_workers_past_the_row_limit_are_refused_known_ones_still_report(redis_server):
    client, pipeline = service(redis_server, max_worker_rows=2)
    create(client, "j")
    update(client, "j", "a")
    update(client, "j", "b")
    pipeline.drain()
    assert_service_full(update(client, "j", "c"), "PROGRESS_MAX_WORKER_ROWS")
    assert update(client, "j", "a", current=2).status_code == 202
    pipeline.drain()
    assert {w.workid: w.current for w in pipeline.store.snapshot("j").workers} == {
        "a": 2,
        "b": 1,
    }


def test_create_answers_at_once_with_a_placeholder_chart_and_queues_nothing(redis_server):
    client, pipeline = service(redis_server)
    assert create(client, "j", desc="Reduce the observations").status_code == 200
    assert pipeline.broker.sent == []  # no render queued: a create flood cannot reach renderers
    first = client.simulate_get("/progress/render", params={"jobid": "j"})
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.headers["etag"].endswith('-placeholder"')
    assert Image.open(io.BytesIO(first.content)).size[0] == 1000

    update(client, "j", "w")
    pipeline.drain()
    (tag,) = {args[0] for name, args, _, _ in pipeline.broker.sent if name == RENDER}
    pipeline.render(tag, render_png)
    drawn = wait_for_new_etag(client, first.headers["etag"])
    assert "placeholder" not in drawn


def wait_for_new_etag(client, old: str) -> str:
    """The web process caches a chart for a quarter of the render interval."""

    def new_etag():
        etag = client.simulate_get("/progress/render", params={"jobid": "j"}).headers["etag"]
        return etag if etag != old else None

    return wait_until(new_etag, 5, what="the drawn chart to replace the placeholder")
