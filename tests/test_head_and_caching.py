"""HEAD wherever GET only reads (`curl -I`), never on a write; and the Cache-Control rule
(api/caching.py), on the live service."""

from __future__ import annotations

import pytest
import requests

from api.pages import ASSETS, static_url
from tests.harness import wait_until

READS = [
    "/progress/status",
    "/progress/render",
    "/progress/show",
    "/progress/jobs",
    "/progress/",
    "/openapi.json",
    "/livez",  # not /readyz: it may answer 503 while other tests hold the workers busy
    "/metrics",
]


def url(service, path: str) -> str:
    return f"{service.url}{path}"


@pytest.mark.parametrize("path", READS)
def test_head_answers_as_get_without_a_body(live_service, jobid, path):
    live_service.get("create", jobid=jobid)
    get = requests.get(url(live_service, path), params={"jobid": jobid}, timeout=30)
    head = requests.head(url(live_service, path), params={"jobid": jobid}, timeout=30)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["Cache-Control"] == get.headers["Cache-Control"]


def test_head_of_a_static_file(live_service):
    path = "/progress/" + static_url("progress.js")
    head = requests.head(url(live_service, path), timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["ETag"] == f'"{ASSETS["progress.js"].version}"'


def test_head_of_an_unknown_job_is_404(live_service, jobid):
    assert (
        requests.head(
            url(live_service, "/progress/status"), params={"jobid": jobid}, timeout=30
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("create", {"desc": "made by HEAD"}),
        ("update", {"workid": "w", "current": 1, "total": 2}),
        ("fail", {"desc": "failed by HEAD"}),
        ("delete", {}),
    ],
)
def test_head_of_a_write_is_405_and_changes_nothing(live_service, jobid, endpoint, params):
    live_service.get("create", jobid=jobid, desc="as created")
    before = live_service.get("status", jobid=jobid, workers="all").json()
    head = requests.head(
        url(live_service, f"/progress/{endpoint}"), params={"jobid": jobid, **params}, timeout=30
    )
    assert head.status_code == 405
    assert "HEAD" not in head.headers["Allow"] and "GET" in head.headers["Allow"]
    # Nothing was queued either: an update sent after it is the only one applied.
    live_service.get("update", jobid=jobid, workid="after", current=1, total=2)
    after = wait_until(
        lambda: (
            (s := live_service.get("status", jobid=jobid, workers="all").json())["workers"] and s
        ),
        20,
    )
    assert after["desc"] == before["desc"] == "as created"
    assert after["job_failed"] is None and after["created"] == before["created"]
    assert [w["workid"] for w in after["workers"]] == ["after"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/progress/status", "no-store"),
        ("/progress/jobs", "no-store"),
        ("/progress/show", "no-store"),
        ("/progress/", "no-store"),
        ("/progress/render", "no-cache"),  # kept, revalidated by its ETag
        ("/openapi.json", "max-age=300"),
        ("/readyz", "no-store"),  # 200, or 503 while the workers are busy: no-store both
    ],
)
def test_cache_control_of_reads(live_service, jobid, path, expected):
    live_service.get("create", jobid=jobid)
    resp = requests.get(url(live_service, path), params={"jobid": jobid}, timeout=30)
    assert resp.status_code == 200 or path == "/readyz"
    assert resp.headers["Cache-Control"] == expected


def test_cache_control_of_writes_and_errors(live_service, jobid):
    answers = [
        live_service.get("create", jobid=jobid),
        live_service.get("update", jobid=jobid, workid="w", current=1, total=2),
        live_service.get("fail", jobid=jobid),
        live_service.get("delete", jobid=jobid),
        live_service.get("status", jobid=jobid),  # 404 now: must not be kept either
        live_service.get("update", jobid=jobid, workid="w", current="x", total=2),
    ]
    assert [a.status_code for a in answers] == [200, 202, 200, 200, 404, 400]
    assert {a.headers["Cache-Control"] for a in answers} == {"no-store"}


def test_static_files_are_kept_by_version(live_service):
    current = requests.get(url(live_service, "/progress/" + static_url("progress.css")), timeout=30)
    unversioned = requests.get(url(live_service, "/progress/static/progress.css"), timeout=30)
    assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert unversioned.headers["Cache-Control"] == "no-cache"
