"""A job failed as a whole (/progress/fail), and create's meta, on the wire: who failed it and
why in status, the first failure standing, the secret enforced, bad input refused naming the
parameter and changing nothing, the completion hook firing 'failed' exactly once, the chart
saying it in red. Against a Redis of its own, the app in this process and the ingest step run
here, so every step is seen as it happens."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from domain.model import JobFailure, JobSnapshot, WorkerRow
from renderer.chart import render_png
from tasks.notify import completion_document
from tasks.store import job_keys
from tests.harness import RedisServer
from tests.inprocess import InProcessService

HOOK = "http://127.0.0.1:9/hook"  # recorded by the RecordingBroker, never called
FAILED_RED = (0xB7, 0x1C, 0x1C)  # renderer.chart._FAILED_TEXT, the banner's background


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("fail-redis")).start()
    yield InProcessService(server)
    server.stop()


def with_hook(service: InProcessService, jobid: str, **create) -> None:
    assert service.get("create", jobid=jobid, **create).status_code == 200
    service.store.redis.hset(job_keys(jobid)[0], "notify", HOOK)  # the API checks hosts


def stored(service: InProcessService, jobid: str) -> dict:
    return {k: service.store.redis.dump(k) for k in job_keys(jobid)}


# -- failing a job ------------------------------------------------------------------------------
def test_a_worker_fails_the_job_and_status_says_who_why_and_when(service, jobid):
    service.get("create", jobid=jobid, workers="200")
    service.report(jobid, ("16", 1, 1))
    assert service.status(jobid)["job_failed"] is None
    before = time.time()
    resp = service.get("fail", jobid=jobid, workid="17", desc="ValueError: bad input")
    assert resp.status_code == 200, resp.text
    failure = {"by": "worker", "workid": "17", "reason": "ValueError: bad input"}
    assert resp.json["already_failed"] is False
    assert {k: resp.json["job_failed"][k] for k in failure} == failure
    doc = service.status(jobid)
    assert doc["job_failed"] == resp.json["job_failed"]
    assert before <= doc["job_failed"]["at"] <= time.time()
    assert doc["complete"] is False


def test_the_launcher_fails_a_job_without_a_worker_id(service, jobid):
    service.get("create", jobid=jobid)
    resp = service.get("fail", jobid=jobid, workid="", desc="input bucket is gone")
    assert resp.json["job_failed"]["by"] == "launcher"
    assert resp.json["job_failed"]["workid"] is None
    assert service.status(jobid)["job_failed"]["reason"] == "input bucket is gone"


def test_the_first_failure_stands(service, jobid):
    service.get("create", jobid=jobid)
    first = service.get("fail", jobid=jobid, workid="17", desc="first").json["job_failed"]
    again = service.get("fail", jobid=jobid, desc="second")
    assert again.status_code == 200
    assert again.json == {"jobid": jobid, "job_failed": first, "already_failed": True}
    assert service.status(jobid)["job_failed"] == first


def test_a_failed_job_still_takes_its_workers_updates_and_is_never_complete(service, jobid):
    service.get("create", jobid=jobid)
    service.get("fail", jobid=jobid, desc="stop")
    service.report(jobid, ("a", 5, 5))
    doc = service.status(jobid)
    assert doc["counts"]["done"] == 1 and doc["complete"] is False


def test_re_creating_a_failed_job_starts_it_afresh(service, jobid):
    service.get("create", jobid=jobid)
    service.get("fail", jobid=jobid, desc="stop")
    service.get("create", jobid=jobid)
    assert service.status(jobid)["job_failed"] is None


def test_failing_an_unknown_job_is_404(service):
    resp = service.get("fail", jobid="no such job", desc="x")
    assert resp.status_code == 404
    assert "no such job" in resp.json["description"]


def test_the_secret_is_enforced(service, jobid):
    service.get("create", jobid=jobid, secret="s3cret")
    before = stored(service, jobid)
    for secret in (None, "wrong"):
        params = {"jobid": jobid, "desc": "x", **({"secret": secret} if secret else {})}
        resp = service.client.simulate_post("/progress/fail", params=params)
        assert resp.status_code == 403, resp.text
        assert resp.json["title"] == "Wrong secret"
    assert stored(service, jobid) == before
    resp = service.client.simulate_post(
        "/progress/fail",
        body="jobid=" + jobid + "&desc=x&secret=s3cret",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert service.status(jobid)["job_failed"]["reason"] == "x"


@pytest.mark.parametrize(
    ("params", "named", "rule"),
    [
        ({"jobid": None}, "jobid", "required"),  # None: left out
        ({"jobid": ""}, "jobid", "required"),
        ({"workid": "a\tb"}, "workid", "tabs or line breaks"),
        ({"workid": "w" * 257}, "workid", "at most 256"),
        ({"desc": "x" * 1025}, "desc", "at most 1024"),
        ({"desc": "bell\x07"}, "desc", "control characters"),
        ({"secret": "\x00"}, "secret", "control characters"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_parameter_and_changes_nothing(
    service, jobid, params, named, rule
):
    service.get("create", jobid=jobid)
    before = stored(service, jobid)
    query = {k: v for k, v in {"jobid": jobid, **params}.items() if v is not None}
    resp = service.get("fail", **query)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert f'"{named}"' in resp.json["description"] and rule in resp.json["description"]
    assert stored(service, jobid) == before


# -- the completion hook --------------------------------------------------------------------------
def test_the_hook_fires_failed_once_even_when_a_worker_fails_too(service, jobid):
    with_hook(service, jobid)
    service.report(jobid, ("a", 1, 4))
    service.get("fail", jobid=jobid, workid="b", desc="ValueError")
    assert service.hooks(jobid) == ["failed"]
    service.report(jobid, ("b", 1, 4, False))  # the failing worker's own red bar
    service.get("fail", jobid=jobid, desc="again")
    service.report(jobid, ("a", 4, 4), ("b", 4, 4))  # and never 'done' later
    assert service.hooks(jobid) == ["failed"]


def test_a_worker_that_failed_first_leaves_no_second_hook(service, jobid):
    with_hook(service, jobid)
    service.report(jobid, ("b", 1, 4, False))
    assert service.hooks(jobid) == ["failed"]
    assert service.get("fail", jobid=jobid, workid="b").status_code == 200
    assert service.hooks(jobid) == ["failed"]


def test_the_hook_document_carries_the_failure_and_the_meta(service, jobid):
    meta = {"input": "s3://bucket/run-7/", "parts": 200, "tags": ["a", "ü"]}
    with_hook(service, jobid, meta=json.dumps(meta))
    service.report(jobid, ("17", 3, 10, False))
    failure = service.get("fail", jobid=jobid, workid="17", desc="ValueError: x").json
    document = completion_document(service.store, jobid, "failed", service.settings)
    assert document["job_failed"] == failure["job_failed"]
    assert document["meta"] == meta and document["failed"] == ["17"]


def test_a_job_without_failure_or_meta_keeps_its_hook_document(service, jobid):
    with_hook(service, jobid)
    service.report(jobid, ("a", 1, 1))
    document = completion_document(service.store, jobid, "done", service.settings)
    assert set(document) == {"jobid", "state", "desc", "workers", "failed"}


# -- create's meta --------------------------------------------------------------------------------
def test_meta_is_kept_and_returned_by_create_and_status(service, jobid):
    meta = {"input": "s3://bucket/x", "n": 3, "nested": {"ok": True, "none": None}}
    resp = service.get("create", jobid=jobid, meta=json.dumps(meta))
    assert resp.status_code == 200 and resp.json["meta"] == meta
    assert service.status(jobid)["meta"] == meta
    assert service.get("create", jobid=jobid).json["meta"] is None  # re-created without it
    assert service.status(jobid)["meta"] is None


@pytest.mark.parametrize(
    ("meta", "rule"),
    [
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ("3", "JSON object"),
        ("null", "JSON object"),
        ("{not json}", "valid JSON"),
        ('{"a": NaN}', "valid JSON"),
        ('{"a": Infinity}', "valid JSON"),
        ('{"a": 1e999}', "valid JSON"),
        ('{"a": "\\ud800"}', "valid Unicode"),
        ('{"a": [1, 2', "valid JSON"),  # cut short
        ('{"a": "' + "x" * 4096 + '"}', "at most 4096 characters"),
    ],
)
def test_bad_meta_is_refused_naming_it(service, jobid, meta, rule):
    service.get("create", jobid=jobid, meta='{"kept": 1}')
    before = stored(service, jobid)
    resp = service.get("create", jobid=jobid, meta=meta)
    assert resp.status_code == 400, resp.text
    assert '"meta"' in resp.json["description"] and rule in resp.json["description"]
    assert stored(service, jobid) == before


def test_meta_as_deep_as_the_parser_refuses_is_a_400_not_a_500(service, jobid):
    resp = service.get("create", jobid=jobid, meta='{"a":' + "[" * 2000 + "]" * 2000 + "}")
    assert resp.status_code == 400, resp.text
    assert "too deeply" in resp.json["description"]


def test_the_meta_bound_is_a_setting(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        small = InProcessService(server, PROGRESS_MAX_META_LENGTH="16")
        assert small.get("create", jobid="j", meta='{"a": 1}').status_code == 200
        resp = small.get("create", jobid="j", meta='{"a": "0123456789"}')
        assert resp.status_code == 400 and "at most 16 characters" in resp.json["description"]
    finally:
        server.stop()


# -- the chart ----------------------------------------------------------------------------------
def red_rows(png: bytes) -> int:
    """Rows of the chart's header (its top 90 px) that are mostly the banner's red."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[:90]
    return int(((pixels == FAILED_RED).all(axis=2).mean(axis=1) > 0.5).sum())


@pytest.mark.parametrize("workers", [0, 3, 500])
def test_the_chart_says_it_in_red_at_the_top(workers):
    now = time.time()
    rows = tuple(WorkerRow(f"w{i}", i % 7, 7, True, "", now) for i in range(workers))
    snapshot = JobSnapshot("j", "map", now - 60, 3600, workers=rows)
    assert red_rows(render_png(snapshot, now=now)) == 0
    failure = JobFailure("worker", "17", "ValueError: bad input", now)
    failed = JobSnapshot("j", "map", now - 60, 3600, workers=rows, job_failed=failure)
    assert red_rows(render_png(failed, now=now)) >= 20


def test_failing_a_job_makes_its_chart_due_and_the_render_reads_the_failure(service, jobid):
    service.get("create", jobid=jobid)
    service.broker.sent.clear()
    service.get("fail", jobid=jobid, workid="17", desc="ValueError")
    assert [name for name, *_ in service.broker.sent] == ["tasks.render.render_job"]
    start = service.store.begin_render(service.broker.sent[0][1][0], time.time())
    assert start.snapshot.job_failed.workid == "17"
