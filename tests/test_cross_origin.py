"""Other sites' pages may read a job, never change one: on the live service, with the headers
Chromium sends for each kind of request a hostile page can make (an <img>, a form, fetch),
and none for what scripts send (curl, requests, the client)."""

from __future__ import annotations

import pytest
import requests

from tests.harness import wait_until

EVIL = "http://evil.example"
# What Chromium sends for each way a page on another site can reach a URL.
IMAGE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
FORM_POST = {
    "Origin": EVIL,
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "Content-Type": "application/x-www-form-urlencoded",
}
LINK = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
SIBLING = {**IMAGE, "Sec-Fetch-Site": "same-site"}  # evil.example.org against example.org
OLD_BROWSER_POST = {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}
FETCH_READ = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
ADDRESS_BAR = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}


def call(service, method: str, endpoint: str, headers: dict, **params) -> requests.Response:
    url = f"{service.url}/progress/{endpoint}"
    if method == "POST":
        return requests.post(url, data=params, headers=headers, timeout=30)
    return requests.request(method, url, params=params, headers=headers, timeout=30)


def workers(service, jobid: str) -> list[str]:
    status = service.get("status", jobid=jobid, workers="all")
    assert status.status_code == 200, status.text
    return [w["workid"] for w in status.json()["workers"]]


@pytest.mark.parametrize(
    "headers", [IMAGE, FORM_POST, LINK, SIBLING, OLD_BROWSER_POST], ids=lambda h: str(sorted(h))
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_page_of_another_site_changes_a_job(live_service, jobid, headers, method):
    assert live_service.get("create", jobid=jobid, desc="mine").status_code == 200
    live_service.get("update", jobid=jobid, workid="w", current=1, total=2)
    wait_until(lambda: workers(live_service, jobid) == ["w"], 20, what="the first update")
    attacks = [
        ("create", {"jobid": jobid, "desc": "taken over"}),
        ("create", {"jobid": f"{jobid}:new"}),
        ("update", {"jobid": jobid, "workid": "intruder", "current": 1, "total": 1}),
        ("fail", {"jobid": jobid, "desc": "made to fail"}),
        ("delete", {"jobid": jobid}),
    ]
    for endpoint, params in attacks:
        resp = call(live_service, method, endpoint, headers, **params)
        assert resp.status_code == 403, (endpoint, resp.text)
        assert "another site" in resp.json()["description"]
        assert "Access-Control-Allow-Origin" not in resp.headers
    # An HTTP DELETE from fetch() never gets past its preflight; sent anyway, it is refused.
    assert call(live_service, "DELETE", "delete", headers, jobid=jobid).status_code == 403
    # An update sent after the attacks is applied after anything they could have queued.
    live_service.get("update", jobid=jobid, workid="x", current=1, total=2)
    wait_until(lambda: "x" in workers(live_service, jobid), 20, what="the last update")
    status = live_service.get("status", jobid=jobid, workers="all").json()
    assert status["desc"] == "mine" and status["job_failed"] is None
    assert [w["workid"] for w in status["workers"]] == ["w", "x"]
    assert live_service.get("status", jobid=f"{jobid}:new").status_code == 404


@pytest.mark.parametrize("headers", [{}, ADDRESS_BAR], ids=["script", "address bar"])
def test_scripts_and_the_address_bar_still_change_jobs(live_service, jobid, headers):
    """curl and the MWA scripts send no Sec-Fetch-Site or Origin; a URL typed or bookmarked
    is Sec-Fetch-Site: none. Same origin (a page of the service itself) is allowed too."""
    assert call(live_service, "GET", "create", headers, jobid=jobid).status_code == 200
    assert call(live_service, "POST", "create", headers, jobid=jobid).status_code == 200
    update = {"jobid": jobid, "workid": "w", "current": 1, "total": 2}
    assert call(live_service, "GET", "update", headers, **update).status_code == 202
    own = {"Origin": live_service.url, "Sec-Fetch-Site": "same-origin"}
    assert call(live_service, "GET", "fail", own, jobid=jobid).status_code == 200
    assert call(live_service, "DELETE", "delete", headers, jobid=jobid).status_code == 200


@pytest.mark.parametrize("endpoint", ["status", "render", "jobs"])
def test_other_sites_may_read(live_service, jobid, endpoint):
    live_service.get("create", jobid=jobid)
    resp = call(live_service, "GET", endpoint, FETCH_READ, jobid=jobid)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # The same without an Origin (a chart a cache keeps for curl and for pages alike).
    plain = call(live_service, "GET", endpoint, {}, jobid=jobid)
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    # Its preflight (a page asking first) allows reading only.
    preflight = call(
        live_service, "OPTIONS", endpoint, {**FETCH_READ, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("endpoint", "asked"),
    [
        ("delete", "DELETE"),
        ("delete", "GET"),
        ("create", "POST"),
        ("update", "POST"),
        ("fail", "GET"),
        ("status", "POST"),
        ("status", "DELETE"),
    ],
)
def test_a_preflight_for_anything_but_a_read_is_refused(live_service, endpoint, asked):
    headers = {**FETCH_READ, "Access-Control-Request-Method": asked}
    resp = call(live_service, "OPTIONS", endpoint, headers)
    assert resp.status_code == 403
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_a_read_asking_for_extra_headers_is_refused(live_service):
    headers = {
        **FETCH_READ,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "content-type",
    }
    resp = call(live_service, "OPTIONS", "status", headers)
    assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.parametrize("path", ["/progress/show", "/progress/", "/metrics", "/readyz"])
def test_pages_and_probes_are_not_shared(live_service, jobid, path):
    live_service.get("create", jobid=jobid)
    resp = requests.get(
        f"{live_service.url}{path}", params={"jobid": jobid}, headers=FETCH_READ, timeout=30
    )
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
