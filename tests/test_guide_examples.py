"""The MWA user guide's own examples, as written, against the live service: only the base URL
changes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from tests.harness import wait_until

pytestmark = pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")


# At the telescope `date -Ins` ends in +08:00: a `+` that the guide's URLs send raw.
EAST_OF_UTC = "Australia/Perth"


def sh(script: str, base: str, tz: str = "UTC", **env: str) -> str:
    done = subprocess.run(
        ["bash", "-c", script],
        env={"BASE": base, "LOGNAME": "alice", "PATH": "/usr/bin:/bin", "TZ": tz, **env},
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
    assert doc["jobid"] == jobid.replace("+", " ")  # +00:00: stored with a space (README)
    assert doc["desc"] == "This is my job"


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


# --------------------------------------------------------------------------- east of UTC
# The guide's two styles mixed, as its own example mixes them: a shell launcher and Python
# workers, or the other way round. Its raw URLs send the `+` of `+08:00` as a space, its
# --data-urlencode line and requests as a `+`: all must reach one job.

RAW_LAUNCHER = """
JOBID=${LOGNAME}:`date -Ins`
curl -sf "$BASE/progress/create?jobid=${JOBID}&desc=My+Job" >/dev/null
echo "View progress of this job at $BASE/progress/show?jobid=${JOBID}"
echo "$JOBID"
"""
ENCODED_LAUNCHER = """
JOBID=${LOGNAME}:`date -Ins`
curl -sf -G --data-urlencode jobid="${JOBID}" --data-urlencode desc="My Job" \
    $BASE/progress/create >/dev/null
echo "View progress of this job at $BASE/progress/show?jobid=${JOBID}"
echo "$JOBID"
"""
RAW_WORKERS = """
for w in 1 2 3; do
    curl -sf "$BASE/progress/update?jobid=${JOBID}&workid=$w&current=$((w * 7))&total=22"
done
"""
ENCODED_WORKERS = """
for w in 1 2 3; do
    curl -sf -G --data-urlencode jobid="${JOBID}" --data-urlencode workid=$w \
        --data-urlencode current=$((w * 7)) --data-urlencode total=22 $BASE/progress/update
done
"""


def launch_in_shell(base: str, script: str) -> tuple[str, str]:
    """The id the launcher made, and the show URL it printed."""
    *_, echoed, jobid = sh(script, base, tz=EAST_OF_UTC).strip().splitlines()
    assert jobid.startswith("alice:") and jobid.endswith("+08:00"), jobid
    return jobid, echoed.removeprefix("View progress of this job at ")


def launch_in_python(base: str) -> str:
    jobid = "alice:" + sh("date -Ins", base, tz=EAST_OF_UTC).strip()
    assert jobid.endswith("+08:00"), jobid
    resp = requests.get(f"{base}/progress/create", params={"jobid": jobid, "desc": "My Job"})
    assert resp.status_code == 200, resp.text
    return jobid


def python_workers(base: str, jobid: str) -> None:
    for w in (1, 2, 3):
        resp = requests.get(
            f"{base}/progress/update",
            params={"jobid": jobid, "workid": w, "current": w * 7, "total": 22},
            timeout=5,
        )
        assert resp.status_code == 202, resp.text


def shell_workers(base: str, jobid: str, script: str) -> None:
    answers = sh(script, base, tz=EAST_OF_UTC, JOBID=jobid)
    assert answers == '{"accepted": true}' * 3, answers


def assert_one_job_with_three_workers(base: str, jobid: str, show_url: str | None) -> None:
    def three_workers():
        doc = requests.get(f"{base}/progress/status", params={"jobid": jobid}, timeout=5).json()
        return doc if len(doc.get("workers", ())) == 3 else None

    doc = wait_until(three_workers, 20, what="three workers in the launcher's job")
    assert doc["desc"] == "My Job" and doc["jobid"] == jobid.replace("+", " ")
    assert [(w["workid"], w["current"]) for w in doc["workers"]] == [
        ("1", 7),
        ("2", 14),
        ("3", 21),
    ]
    if show_url:  # the URL the launcher printed, as a user pastes it
        status_url = show_url.replace("/progress/show?", "/progress/status?")
        assert requests.get(status_url, timeout=5).json()["workers"] == doc["workers"]
        page = requests.get(show_url, timeout=5)
        assert page.status_code == 200 and "My Job" in page.text


@pytest.mark.parametrize("launcher", [RAW_LAUNCHER, ENCODED_LAUNCHER], ids=["raw", "encoded"])
def test_shell_launcher_and_python_workers_east_of_utc(live_service, launcher):
    jobid, show_url = launch_in_shell(live_service.url, launcher)
    python_workers(live_service.url, jobid)
    assert_one_job_with_three_workers(live_service.url, jobid, show_url)


@pytest.mark.parametrize("workers", [RAW_WORKERS, ENCODED_WORKERS], ids=["raw", "encoded"])
def test_python_launcher_and_shell_workers_east_of_utc(live_service, workers):
    jobid = launch_in_python(live_service.url)
    shell_workers(live_service.url, jobid, workers)
    assert_one_job_with_three_workers(live_service.url, jobid, None)


def test_raw_launcher_and_encoded_shell_workers_east_of_utc(live_service):
    jobid, show_url = launch_in_shell(live_service.url, RAW_LAUNCHER)
    shell_workers(live_service.url, jobid, ENCODED_WORKERS)
    assert_one_job_with_three_workers(live_service.url, jobid, show_url)
