"""/progress/delete: GET, POST and HTTP DELETE remove every key of a job at once (its secret
required if it has one); afterwards the job answers 404 everywhere, and neither its queued
updates nor a render under way bring anything of it back. Against a Redis of its own, scanned
for the job's keys."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest

from tasks.store import (
    EXPIRY,
    RECENT,
    RENDER_DUE,
    RENDER_LATER,
    STATS,
    job_tag,
)
from tests.harness import RedisServer
from tests.inprocess import InProcessService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("delete-redis")).start()
    yield InProcessService(server)
    server.stop()


def traces(service, jobid: str) -> dict:
    """Whatever Redis still holds of the job: its keys (found by SCAN over its hash tag) and
    its entries in the service-wide sets."""
    tag = job_tag(jobid)
    r = service.store.redis
    keys = sorted(r.scan_iter(match=f"progress:{{{tag}}}:*", count=1000))
    sets = {key: r.zscore(key, tag) for key in (EXPIRY, RECENT, RENDER_DUE, RENDER_LATER)}
    return {"keys": keys, "sets": {k: v for k, v in sets.items() if v is not None}}


def rows_counted(service) -> int:
    """The worker rows of all jobs, as PROGRESS_MAX_WORKER_ROWS counts them."""
    return int(service.store.redis.hget(STATS, "workers") or 0)


def a_job_with_everything(service, jobid: str, **create) -> None:
    """A job with workers, every index, a chart and a redraw scheduled."""
    assert service.get("create", jobid=jobid, **create).status_code == 200
    secret = create.get("secret", "")
    batch = [("w1", 1, 4), ("w2", 4, 4), ("w3", 1, 4, False)]
    if secret:
        service.client.simulate_post(
            "/progress/update",
            json=[
                {"jobid": jobid, "workid": w[0], "current": w[1], "total": w[2],
                 "ok": int(w[3]) if len(w) > 3 else 1, "secret": secret}
                for w in batch
            ],
        )  # fmt: skip
        service.drain()
    else:
        service.report(jobid, *batch)
    service.pipeline.render(job_tag(jobid), lambda *a, **k: b"png")
    assert service.store.chart(jobid, with_png=False) is not None
    found = traces(service, jobid)
    assert len(found["keys"]) >= 7 and set(found["sets"]) >= {EXPIRY, RECENT, RENDER_LATER}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_delete_removes_every_key_and_every_endpoint_then_answers_404(service, jobid, method):
    before = rows_counted(service)
    a_job_with_everything(service, jobid)
    assert rows_counted(service) == before + 3
    # The web process keeps charts it served for a moment: the delete must drop this one.
    assert service.get("render", jobid=jobid).status_code == 200
    deleted_before = deleted_jobs_counted(service)
    query = {"jobid": jobid}
    if method == "POST":
        resp = service.client.simulate_post(
            "/progress/delete",
            body=urlencode(query),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        resp = service.client.simulate_request(method, "/progress/delete", params=query)
    assert resp.status_code == 200, resp.text
    assert resp.json == {"jobid": jobid, "deleted": True}

    assert traces(service, jobid) == {"keys": [], "sets": {}}
    assert rows_counted(service) == before  # room for new workers again
    for endpoint in ("status", "show", "render", "delete"):
        assert service.get(endpoint, jobid=jobid).status_code == 404, endpoint
    update = service.get("update", jobid=jobid, workid="w1", current=2, total=4)
    assert update.status_code == 404
    assert service.get("delete", jobid=jobid).json["title"] == "Unknown job"
    assert deleted_jobs_counted(service) == deleted_before + 1


def deleted_jobs_counted(service) -> float:
    metrics = service.client.simulate_get("/metrics").text
    return float(re.search(r"^progress_jobs_deleted_total (\S+)$", metrics, re.M)[1])


def test_a_re_created_job_shows_its_placeholder_at_once(service, jobid):
    a_job_with_everything(service, jobid)
    assert service.get("render", jobid=jobid).content == b"png"  # kept by the web process
    assert service.get("create", jobid=jobid).status_code == 200
    assert service.get("render", jobid=jobid).content.startswith(b"\x89PNG")  # the placeholder


def test_a_job_with_a_secret_is_deleted_only_with_it(service, jobid):
    a_job_with_everything(service, jobid, secret="s3cret")
    before = traces(service, jobid)
    for params in ({}, {"secret": ""}, {"secret": "guess"}):
        resp = service.get("delete", jobid=jobid, **params)
        assert resp.status_code == 403, resp.text
        assert "'secret' must match" in resp.json["description"]
        assert traces(service, jobid) == before
    # HTTP DELETE takes its parameters from a form body too, as POST does.
    resp = service.client.simulate_delete(
        "/progress/delete",
        body=urlencode({"jobid": jobid, "secret": "s3cret"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert traces(service, jobid) == {"keys": [], "sets": {}}


@pytest.mark.parametrize(
    ("params", "named"),
    [({}, "jobid"), ({"jobid": ""}, "jobid"), ({"jobid": "a\tb"}, "jobid")],
)
def test_bad_input_is_a_400_naming_the_parameter(service, jobid, params, named):
    a_job_with_everything(service, jobid)
    before = traces(service, jobid)
    resp = service.get("delete", **params)
    assert resp.status_code == 400 and f'"{named}"' in resp.json["description"], resp.text
    assert traces(service, jobid) == before


def test_queued_updates_do_not_bring_a_deleted_job_back(service, jobid):
    service.get("create", jobid=jobid)
    service.accept(jobid, ("w1", 1, 2), ("w2", 2, 2))  # accepted, still in the inbox
    assert service.get("delete", jobid=jobid).status_code == 200
    service.drain()
    assert traces(service, jobid) == {"keys": [], "sets": {}}
    assert service.get("status", jobid=jobid).status_code == 404


def test_queued_updates_do_not_reach_a_job_created_again_after_delete(service, jobid):
    service.get("create", jobid=jobid)
    service.accept(jobid, ("old", 1, 2))
    service.get("delete", jobid=jobid)
    service.get("create", jobid=jobid)
    service.report(jobid, ("new", 1, 2))
    assert service.status(jobid)["workers_reported"] == 1
    page = service.get("status", jobid=jobid).json["workers"]
    assert [w["workid"] for w in page] == ["new"]


def test_a_render_under_way_stores_nothing_for_a_deleted_job(service, jobid):
    service.get("create", jobid=jobid)
    service.report(jobid, ("w1", 1, 2))
    tag = job_tag(jobid)
    start = service.store.begin_render(tag, time.time())  # the render worker has read the job
    assert service.get("delete", jobid=jobid).status_code == 200
    changed = service.store.finish_render(tag, start.snapshot, 0, "etag", b"png", time.time() + 9)
    assert not changed  # no further render is asked for
    assert traces(service, jobid) == {"keys": [], "sets": {}}


def test_the_api_description_lists_delete_with_its_three_methods(service):
    spec = service.client.simulate_get("/openapi.json").json
    operations = spec["paths"]["/progress/delete"]
    assert set(operations) == {"get", "post", "delete"}
    assert [p["name"] for p in operations["delete"]["parameters"]] == ["jobid", "secret"]
    assert set(operations["get"]["responses"]) >= {"200", "403", "404"}
