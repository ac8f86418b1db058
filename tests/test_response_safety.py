"""What every answer carries and what a failed one leaves in the logs: an unforeseen exception
is a JSON 500 whose log lines name the path but never the query (it may hold a secret), and
every response, whatever its type, forbids MIME sniffing and sends no Referer."""

from __future__ import annotations

import io
import logging
import uuid

import falcon.testing
import pytest

from api import create_app
from tasks.settings import Settings
from tests.harness import wait_until

SECRET = "hunter2"


class BrokenStore:
    """A stand-in store (and pipeline) whose every call fails as a bug would: not with one of
    the Redis errors the app maps to 503, but with an exception nobody foresaw."""

    def __getattr__(self, name):
        def fails(*args, **kwargs):
            raise RuntimeError(f"the store broke in {name}")

        return fails


@pytest.fixture
def broken():
    """An app over the broken store, and the stream its request log goes to."""
    settings = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:9/0"})  # never connected to
    stream = io.StringIO()
    store = BrokenStore()
    app = create_app(settings, store=store, pipeline=store, log_stream=stream)
    return falcon.testing.TestClient(app), stream


def request_log(stream: io.StringIO) -> str:
    """What the request log has written once its background flush has run."""
    wait_until(lambda: "event=request" in stream.getvalue(), 5, what="the request log")
    return stream.getvalue()


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/progress/status"), ("GET", "/progress/render"), ("GET", "/progress/update")],
)
def test_an_unforeseen_exception_is_a_json_500_and_the_query_stays_out_of_the_logs(
    broken, caplog, capsys, method, path
):
    client, stream = broken
    query = f"secret={SECRET}&jobid=x&workid=w&current=1&total=2"
    with caplog.at_level(logging.DEBUG):
        resp = client.simulate_request(method, path, query_string=query)

    assert resp.status_code == 500
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json["title"] == "500 Internal Server Error"
    assert SECRET not in resp.text

    # Logged: the traceback, with the path.
    unhandled = [r for r in caplog.records if "event=unhandled_error" in r.getMessage()]
    assert len(unhandled) == 1, caplog.text
    assert f'path="{path}"' in unhandled[0].getMessage()
    assert unhandled[0].exc_info and unhandled[0].exc_info[0] is RuntimeError
    # ...but the secret nowhere: not in the log records, the request log, or what went to
    # stderr (where Falcon's default handler writes the whole URL).
    lines = request_log(stream)
    assert f'path="{path}" status=500' in lines
    captured = capsys.readouterr()
    for text in (caplog.text, lines, captured.err, captured.out):
        assert SECRET not in text


def test_expected_errors_keep_their_own_handlers(broken, client):
    """The catch-all does not swallow HTTP errors or the specific handlers (404, 400)."""
    unknown = client.simulate_get("/progress/status", params={"jobid": f"none:{uuid.uuid4()}"})
    assert unknown.status_code == 404 and unknown.json["title"] == "Unknown job"
    bad = client.simulate_get("/progress/status")  # no jobid
    assert bad.status_code == 400
    missing = broken[0].simulate_get("/no/such/route", query_string=f"secret={SECRET}")
    assert missing.status_code == 404


@pytest.fixture(scope="module")
def job(client) -> str:
    jobid = f"test:headers-{uuid.uuid4().hex[:12]}"
    resp = client.simulate_get("/progress/create", params={"jobid": jobid, "desc": "Headers"})
    assert resp.status_code == 200, resp.text
    return jobid


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/progress/status", "application/json"),
        ("/progress/render", "image/png"),
        ("/progress/show", "text/html"),
        ("/openapi.json", "application/json"),
    ],
)
def test_every_response_type_forbids_sniffing_and_sends_no_referrer(
    client, job, path, content_type
):
    resp = client.simulate_get(path, params={"jobid": job})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith(content_type)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_error_responses_carry_the_headers_too(client, broken):
    answers = [
        client.simulate_get("/progress/status", params={"jobid": f"none:{uuid.uuid4()}"}),  # 404
        client.simulate_get("/progress/status"),  # 400
        broken[0].simulate_get("/progress/status", params={"jobid": "x"}),  # 500
    ]
    assert [r.status_code for r in answers] == [404, 400, 500]
    for resp in answers:
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
