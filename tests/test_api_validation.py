"""Bad input: a clear 4xx in Falcon's JSON shape naming the parameter and the rule, and nothing
stored. Runs the app in-process against the session's Redis."""

from __future__ import annotations

import json

import pytest

from tasks.store import _keys as store_keys
from tasks.store import job_tag

GOOD_UPDATE = {"workid": "w1", "current": "5", "total": "22"}


@pytest.fixture
def created(client, jobid):
    assert client.simulate_get("/progress/create", params={"jobid": jobid}).status_code == 200
    return jobid


RENDER_BOOKKEEPING = {b"rendered_at", b"renders"}


def keys_of(store, jobid: str) -> dict:
    """The job's stored rows and fields, to prove a rejected request changed nothing. (Its chart
    and the meta fields a render writes are left out: a render worker of a live service, or a
    sweep re-sending a due render, may be drawing it meanwhile.)"""
    meta, workers, _ = store_keys(job_tag(jobid))
    fields = store.redis.hgetall(meta)
    return {
        meta: {k: v for k, v in fields.items() if k not in RENDER_BOOKKEEPING},
        workers: store.redis.dump(workers),
    }


BAD_UPDATES = [
    # (params overriding a good update, status, parameter named in the description)
    ({"workid": None}, 400, "workid"),
    ({"workid": ""}, 400, "workid"),
    ({"workid": "x" * 257}, 400, "workid"),
    ({"workid": "a\x00b"}, 400, "workid"),
    ({"workid": "a\nb"}, 400, "workid"),
    ({"current": None}, 400, "current"),
    ({"current": "five"}, 400, "current"),
    ({"current": "-1"}, 400, "current"),
    ({"current": "nan"}, 400, "current"),
    ({"current": "inf"}, 400, "current"),
    ({"current": "1e999"}, 400, "current"),
    ({"current": "1e300"}, 400, "current"),
    ({"total": "0"}, 400, "total"),
    ({"total": "-3"}, 400, "total"),
    ({"total": "-inf"}, 400, "total"),
    ({"total": ""}, 400, "total"),
    ({"ok": "maybe"}, 400, "ok"),
    ({"ok": "nan"}, 400, "ok"),
    ({"desc": "d" * 1025}, 400, "desc"),
    ({"desc": "bad\x07bell"}, 400, "desc"),
]


@pytest.mark.parametrize(("override", "status", "param"), BAD_UPDATES)
def test_bad_update_is_rejected_and_changes_nothing(
    client, store, created, override, status, param
):
    params = {"jobid": created, **GOOD_UPDATE, **override}
    params = {k: v for k, v in params.items() if v is not None}
    before = keys_of(store, created)
    resp = client.simulate_get("/progress/update", params=params)
    assert resp.status_code == status, resp.text
    body = resp.json
    assert set(body) >= {"title", "description"}
    assert param in body["description"]
    assert keys_of(store, created) == before


@pytest.mark.parametrize(
    ("query", "param", "rule"),
    [
        ("jobid=J&workid=w&current=1&total=2&current=3", "current", "only once"),
        ("jobid=J&workid=%FF%FE&current=1&total=2", "workid", "UTF-8"),
        ("jobid=J&workid=w&current=1&total=2&desc=%C3", "desc", "UTF-8"),
        ("jobid=J&workid=w%00x&current=1&total=2", "workid", "control"),
    ],
)
def test_malformed_queries(client, store, created, query, param, rule):
    before = keys_of(store, created)
    resp = client.simulate_get("/progress/update", query_string=query.replace("J", created))
    assert resp.status_code == 400
    assert param in resp.json["description"] and rule in resp.json["description"]
    assert keys_of(store, created) == before


def test_update_to_unknown_job_is_404(client, jobid):
    resp = client.simulate_get("/progress/update", params={"jobid": jobid, **GOOD_UPDATE})
    assert resp.status_code == 404
    assert jobid in resp.json["description"]


@pytest.mark.parametrize("endpoint", ["status", "render", "show"])
def test_reads_of_unknown_job_are_404(client, jobid, endpoint):
    resp = client.simulate_get(f"/progress/{endpoint}", params={"jobid": jobid})
    assert resp.status_code == 404
    assert resp.json["title"] == "Unknown job"


@pytest.mark.parametrize("endpoint", ["create", "update", "status", "render", "show"])
def test_missing_jobid_is_named(client, endpoint):
    resp = client.simulate_get(f"/progress/{endpoint}")
    assert resp.status_code == 400
    assert "jobid" in resp.json["description"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"maxage": "0"}, "maxage"),
        ({"maxage": "soon"}, "maxage"),
        ({"maxage": str(10**9)}, "maxage"),
        ({"desc": "t" * 1025}, "desc"),
        ({"jobid": "j" * 257}, "jobid"),
    ],
)
def test_bad_create_is_rejected(client, store, jobid, params, param):
    resp = client.simulate_get("/progress/create", params={"jobid": jobid, **params})
    assert resp.status_code == 400
    assert param in resp.json["description"]
    assert not store.job_exists(jobid)


@pytest.mark.parametrize("interval", ["0.5", "0", "-1", "nan", "often"])
def test_show_refuses_intervals_below_one_second(client, created, interval):
    resp = client.simulate_get("/progress/show", params={"jobid": created, "interval": interval})
    assert resp.status_code == 400
    assert "interval" in resp.json["description"]


def test_oversized_form_body_is_413(client, settings):
    body = "jobid=x&desc=" + "a" * (settings.max_body_bytes + 10)
    resp = client.simulate_post(
        "/progress/create",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 413


def test_post_form_is_read_like_a_query(client, jobid):
    resp = client.simulate_post(
        "/progress/create",
        body=f"jobid={jobid}&desc=Posted+form",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert resp.json["desc"] == "Posted form"


def test_create_answers_urls_with_the_id_encoded(client):
    jobid = "alice:2026-11-21T12:00:00,123/4 ü"
    resp = client.simulate_get("/progress/create", params={"jobid": jobid, "desc": "T"})
    assert resp.status_code == 200
    assert resp.json["jobid"] == jobid
    assert resp.json["show"].startswith("http://progress.test/progress/show?jobid=alice%3A2026")
    status = client.simulate_get("/progress/status", params={"jobid": jobid})
    assert status.json["jobid"] == jobid and status.json["desc"] == "T"


def post_json(client, body):
    return client.simulate_post(
        "/progress/update",
        body=body if isinstance(body, str) else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("[", 400, "not valid JSON"),
        ("{}", 400, '"jobid" parameter is required'),  # one update, with no ids
        ("[]", 400, "non-empty array"),
        ('"text"', 400, "an update object or a non-empty array"),
        ("[1]", 400, "[0] must be an object"),
        ([{"workid": "w", "current": 1, "total": 2}], 400, "jobid"),
        ([{"jobid": "J", "workid": "w", "current": [1], "total": 2}], 400, "current"),
        ([GOOD_UPDATE | {"jobid": "J"}, GOOD_UPDATE | {"jobid": "J", "total": 0}], 400, "[1]"),
        ([GOOD_UPDATE | {"jobid": "J"}, GOOD_UPDATE | {"jobid": "nope:J"}], 404, "nope:"),
    ],
)
def test_bad_json_batches_are_refused_whole(client, store, created, body, status, words):
    if not isinstance(body, str):
        body = [
            {k: (v.replace("J", created) if k == "jobid" else v) for k, v in u.items()}
            for u in body
        ]
    before = keys_of(store, created)
    resp = post_json(client, body)
    assert resp.status_code == status, resp.text
    assert words in resp.json["description"]
    assert keys_of(store, created) == before


def test_json_batch_is_accepted(client, created):
    body = [
        {"jobid": created, "workid": f"w{i}", "current": i, "total": 10, "ok": True}
        for i in range(50)
    ]
    resp = post_json(client, body)
    assert resp.status_code == 202
    assert resp.json == {"accepted": 50}


def test_a_percentage_too_large_to_represent_is_refused(client, store, created):
    before = keys_of(store, created)
    params = {"jobid": created, "workid": "w", "current": "1e15", "total": "1e-300"}
    resp = client.simulate_get("/progress/update", params=params)
    assert resp.status_code == 400 and "percentage" in resp.json["description"]
    assert keys_of(store, created) == before


def test_status_workers_filter_must_be_known(client, created):
    resp = client.simulate_get("/progress/status", params={"jobid": created, "workers": "some"})
    assert resp.status_code == 400 and "workers" in resp.json["description"]
