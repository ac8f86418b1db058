"""Counters on the wire (ARP's free-form report): a JSON object POSTed to /progress/update with
the ids in the query merges the named counters into the worker's, newest first per counter;
bad counters get a JSON 400 naming `counters` and store nothing; the counters go with their job.
In-process app and apply step, against the session's Redis or a private one."""

from __future__ import annotations

import io
import json
import time
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image

from domain.counters import Counter
from domain.model import JobSnapshot, WorkerRow
from renderer.chart import render_png
from tasks.pipeline import Pipeline, WorkerReport
from tasks.settings import Settings
from tasks.store import Store, _counters_key, job_keys, job_tag
from tests.conftest import RecordingBroker
from tests.harness import RedisServer, wait_until
from tests.test_api_validation import keys_of
from tests.test_hostile_input import drain


@pytest.fixture
def created(client, jobid):
    assert client.simulate_get("/progress/create", params={"jobid": jobid}).status_code == 200
    return jobid


def post(client, jobid: str, body, workid: str = "w1", **query):
    """What ARP's script does: requests.post(update_url, json=body)."""
    return client.simulate_post(
        "/progress/update",
        query_string=urlencode({"jobid": jobid, "workid": workid, **query}),
        body=body if isinstance(body, str) else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


def worker(client, store, jobid: str, workid: str = "w1", expect=lambda w: True) -> dict:
    """The worker as status gives it, once the accepted updates are applied and `expect` holds."""

    def read():
        drain(store)
        doc = client.simulate_get("/progress/status", params={"jobid": jobid}).json
        found = [w for w in doc["workers"] if w["workid"] == workid]
        return found and expect(found[0]) and found[0]

    return wait_until(read, 10, what=f"worker {workid} in the status")


def stored(store, jobid: str) -> dict:
    return {**keys_of(store, jobid), "counters": store.redis.dump(_counters_key(job_tag(jobid)))}


def test_counters_alone_merge_per_counter_and_the_worker_runs(client, store, created):
    resp = post(client, created, {"counters": {"Example Counter": [1, "red"], "Random Char": "R"}})
    assert resp.status_code == 202 and resp.json == {"accepted": True}
    first = worker(client, store, created)
    assert (first["state"], first["percent"]) == ("running", 0)  # it never posted a total

    assert post(client, created, {"counters": {"Random Char": "J"}}).status_code == 202
    assert (
        post(client, created, {"counters": {"Example Counter": [2, "#00AA00"]}}).status_code == 202
    )
    w = worker(client, store, created, expect=lambda w: w["counters"][0]["value"] == 2)
    assert w["counters"] == [  # in the order first posted, each with its latest value
        {"name": "Example Counter", "value": 2, "colour": "#00aa00"},
        {"name": "Random Char", "value": "J", "colour": None},
    ]
    assert w["state"] == "running" and w["updated"] > first["updated"]  # it is alive


def test_counters_ride_with_progress_and_leave_it_as_it_is(client, store, created):
    body = {"current": 5, "total": 10, "desc": "flagging", "counters": {"files": 3}}
    assert post(client, created, body).status_code == 202
    assert post(client, created, {"counters": {"files": 4, "stage": "cal"}}).status_code == 202
    w = worker(client, store, created, expect=lambda w: len(w["counters"]) == 2)
    assert (w["current"], w["total"], w["desc"], w["percent"]) == (5, 10, "flagging", 50)
    assert [(c["name"], c["value"]) for c in w["counters"]] == [("files", 4), ("stage", "cal")]
    # A batch item may carry counters too; and a later plain update keeps them.
    batch = [{"jobid": created, "workid": "w2", "current": 1, "total": 2, "counters": {"n": 1.5}}]
    resp = client.simulate_post("/progress/update", json=batch)
    assert resp.status_code == 202 and resp.json == {"accepted": 1}
    assert (
        client.simulate_get(
            "/progress/update", params={"jobid": created, "workid": "w1", "current": 6, "total": 10}
        ).status_code
        == 202
    )
    assert worker(client, store, created, "w2")["counters"] == [
        {"name": "n", "value": 1.5, "colour": None}
    ]
    w = worker(client, store, created, expect=lambda w: w["current"] == 6)
    assert [(c["name"], c["value"]) for c in w["counters"]] == [("files", 4), ("stage", "cal")]


def test_newest_wins_per_counter_whatever_order_batches_are_applied_in(tmp_path):
    """Two updates applied in reverse order (a redelivered batch): the one accepted later wins,
    counter by counter, and a counter only the older one named is kept."""
    redis = RedisServer(tmp_path).start()
    try:
        store = Store(redis.client())
        pipeline = Pipeline(store, RecordingBroker(), Settings(redis_url=redis.url))
        pipeline.create_job("j", "", 100)

        def counters(*pairs):
            report = WorkerReport("j", "w", 0, 0, True, "", counters=tuple(pairs), progress=False)
            pipeline.accept([report])

        counters(Counter("a", "old"), Counter("b", 1, "red"))
        counters(Counter("a", "new"))
        entries, _ = store.claim_inbox("batch", time.time(), 100, 1000)
        assert len(entries) == 2
        for entry in reversed(entries):
            store.apply_batch("batch", [entry], time.time())
        (row,) = store.snapshot("j").workers
        assert row.counters == (Counter("a", "new"), Counter("b", 1, "red"))
    finally:
        redis.stop()


TOO_MANY = {f"c{i}": i for i in range(21)}
BAD_BODIES = [
    # (body, words the 400's description holds besides "counters")
    ({"counters": {"x": [1, "reddish"]}}, '"reddish" is not a CSS colour'),
    ({"counters": {"x": [1, "#ff00"]}}, "not a CSS colour"),
    ({"counters": {"x": [1, 2]}}, "[value, colour]"),
    ({"counters": {"x": [1, "red", "big"]}}, "[value, colour]"),
    ({"counters": TOO_MANY}, "at most 20 counters"),
    ({"counters": {"n" * 65: 1}}, "1 to 64 characters"),
    ({"counters": {"": 1}}, "1 to 64 characters"),
    ({"counters": {"x": "v" * 65}}, "at most 64 characters"),
    ({"counters": {"x": "a\nb"}}, "control characters"),
    ({"counters": {"a\tb": 1}}, "control characters"),
    ({"counters": {"x": True}}, "a number or a string"),
    ({"counters": {"x": None}}, "a number or a string"),
    ({"counters": {"x": {"y": 1}}}, "a number or a string"),
    ({"counters": {"x": 1e16}}, "finite"),
    ('{"counters": {"x": NaN}}', "finite"),
    ('{"counters": {"x": "\\ud800"}}', "Unicode"),
    ({"counters": ["x", 1]}, "must be an object"),
    ({"counters": "x=1"}, "must be an object"),
]


@pytest.mark.parametrize(("body", "words"), BAD_BODIES)
def test_bad_counters_get_a_400_naming_them_and_store_nothing(client, store, created, body, words):
    post(client, created, {"current": 1, "total": 2, "counters": {"kept": 1}})
    worker(client, store, created)
    before = stored(store, created)
    resp = post(client, created, body)
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    assert '"counters"' in resp.json["description"] and words in resp.json["description"]
    drain(store)
    assert stored(store, created) == before


@pytest.mark.parametrize(
    ("body", "query", "named"),
    [
        ('"counters"', {}, "an update object or a non-empty array"),  # not an object
        ("5", {}, "an update object or a non-empty array"),
        ({"counters": {"x": 1}, "desc": "d"}, {}, '"desc"'),  # desc needs current and total
        ({"counters": {"x": 1}, "ok": 0}, {}, '"ok"'),
        ({"counters": {"x": 1}, "current": 1}, {}, '"total"'),
        ({"counters": {"x": 1}, "workid": "w9"}, {}, '"workid"'),  # in the query and the body
        ({"counters": {}}, {}, '"current"'),  # nothing to report
    ],
)
def test_bad_update_objects_are_refused_naming_the_field(
    client, store, created, body, query, named
):
    before = stored(store, created)
    resp = post(client, created, body, **query)
    assert resp.status_code == 400, resp.text
    assert named in resp.json["description"]
    drain(store)
    assert stored(store, created) == before


def test_a_worker_holds_at_most_max_counters_names(client, store, created):
    full = {f"c{i}": i for i in range(20)}
    assert post(client, created, {"counters": full}).status_code == 202
    worker(client, store, created, expect=lambda w: len(w["counters"]) == 20)
    before = stored(store, created)
    resp = post(client, created, {"counters": {"c0": 5, "one more": 1}})
    assert resp.status_code == 400
    assert '"counters"' in resp.json["description"] and "more than 20" in resp.json["description"]
    drain(store)
    assert stored(store, created) == before
    # Names it has already may change.
    assert post(client, created, {"counters": {"c0": 5, "c19": "x"}}).status_code == 202


@pytest.mark.parametrize("how", ["delete", "re-create", "expire"])
def test_counters_go_with_their_job(client, store, created, how):
    post(client, created, {"counters": {"x": [1, "red"]}})
    worker(client, store, created)
    key = _counters_key(job_tag(created))
    assert key in job_keys(created) and store.redis.exists(key)
    if how == "delete":
        assert client.simulate_get("/progress/delete", params={"jobid": created}).status_code == 200
    elif how == "re-create":
        client.simulate_get("/progress/create", params={"jobid": created})
        assert (
            client.simulate_get("/progress/status", params={"jobid": created}).json["workers"] == []
        )
    else:
        store.redis.zadd("progress:jobs:expiry", {job_tag(created): 1})
        assert store.expire_jobs(time.time()) >= 1
    assert not store.redis.exists(key)


def test_the_chart_prints_counters_in_their_colours():
    now = time.time()
    coloured = Counter("Example Counter", 10, "red")
    rows = (WorkerRow("w1", 1, 4, True, "", now, counters=(coloured, Counter("Random Char", "Q"))),)
    snapshot = JobSnapshot("j", "ARP", now - 10, 100, workers=rows)
    image = Image.open(io.BytesIO(render_png(snapshot, now=now))).convert("RGB")
    assert red_pixels(image) > 3  # the value "10", exactly red (the chart is then full colour)
    plain = JobSnapshot(
        "j", "ARP", now - 10, 100, workers=(rows[0].__class__("w1", 1, 4, True, "", now),)
    )
    image = Image.open(io.BytesIO(render_png(plain, now=now))).convert("RGB")
    assert red_pixels(image) == 0


def red_pixels(image: Image.Image) -> int:
    rgb = np.asarray(image).astype(int)
    return int(((rgb[..., 0] > 215) & (rgb[..., 1] < 40) & (rgb[..., 2] < 40)).sum())
