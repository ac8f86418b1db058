"""The MWA user guide's own examples, as written, against the live service: only the base URL
changes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from tests.harness import wait_until

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


def sh(script: str, base: str) -> str:
    done = subprocess.run(
        ["bash", "-c", script],
        env={"BASE": base, "LOGNAME": "alice", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_shell_recipe_with_raw_id_in_urls(live_service):
    # The guide's recipe: an id typed raw into the URL ("+" in the timezone decodes as a space,
    # the same way in every URL, so create, update, show and status agree on the job).
    out = sh(
        """
        JOBID=${LOGNAME}:`date -Ins`
        curl -sf "$BASE/progress/create?jobid=${JOBID}&desc=My+Job" >/dev/null
        curl -sf "$BASE/progress/update?jobid=${JOBID}&workid=1&current=5&total=22" >/dev/null
        curl -sf "$BASE/progress/update?jobid=${JOBID}&workid=2&current=10&total=22" >/dev/null
        curl -sf "$BASE/progress/update?jobid=${JOBID}&workid=3&current=21&total=22" >/dev/null
        echo "View progress of this job at $BASE/progress/show?jobid=${JOBID}"
        curl -sf -o /dev/null "$BASE/progress/show?jobid=${JOBID}"
        echo "$JOBID"
        """,
        live_service.url,
    )
    raw_id = out.strip().splitlines()[-1]
    assert raw_id.startswith("alice:") and "," in raw_id

    def status():
        resp = requests.get(f"{live_service.url}/progress/status?jobid={raw_id}", timeout=5)
        return resp.json() if len(resp.json()["workers"]) == 3 else None

    doc = wait_until(status, 20, what="three workers")
    assert doc["desc"] == "My Job"
    assert [(w["workid"], w["current"], w["total"]) for w in doc["workers"]] == [
        ("1", 5, 22),
        ("2", 10, 22),
        ("3", 21, 22),
    ]
    assert doc["workers"][2]["percent"] == 95.45
    png = requests.get(f"{live_service.url}/progress/render?jobid={raw_id}", timeout=5)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_shell_recipe_with_data_urlencode(live_service):
    out = sh(
        """
        JOBID=${LOGNAME}:`date -Ins`
        curl -sf -G --data-urlencode jobid="${JOBID}" --data-urlencode desc="This is my job" \
            $BASE/progress/create >/dev/null
        echo "$JOBID"
        """,
        live_service.url,
    )
    jobid = out.strip()
    doc = live_service.get("status", jobid=jobid).json()
    assert doc["jobid"] == jobid and doc["desc"] == "This is my job"


def test_python_requests_recipe(live_service, jobid):
    assert live_service.get("create", jobid=jobid, desc="Testing").status_code == 200
    resp = requests.get(
        f"{live_service.url}/progress/update",
        params={
            "jobid": jobid,
            "workid": "flagger1",
            "current": 7,
            "total": 50,
            "desc": "lots of RFI",
        },
        timeout=5,
    )
    assert resp.status_code == 202
    doc = wait_until(
        lambda: live_service.get("status", jobid=jobid).json()["workers"], 20, what="the update"
    )
    assert doc == [doc[0]] and doc[0]["desc"] == "lots of RFI" and doc[0]["percent"] == 14.0


def test_ok_zero_marks_the_worker_failed(live_service, jobid):
    live_service.get("create", jobid=jobid)
    live_service.get("update", jobid=jobid, workid="w", current=3, total=9, ok=0)
    workers = wait_until(
        lambda: live_service.get("status", jobid=jobid).json()["workers"], 20, what="the update"
    )
    assert workers[0]["ok"] is False and workers[0]["state"] == "failed"
