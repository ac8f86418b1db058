"""Counters from the client against the live service: Worker.counters, `progress update
--counter`, and the update URL Job.env and `progress run` hand a worker ($PROGRESS_UPDATE_URL),
each read back from the status JSON."""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from progress_client import Job

from .conftest import eventually
from .test_cli_run import clean_env, finish, progress_cli


def counters_of(job: Job, workid: str, want: int, state: str | None = None) -> dict:
    """The worker's status entry once it has `want` counters (and is in `state`, if given)."""

    def find():
        for w in job.status()["workers"]:
            if w["workid"] == workid and len(w["counters"]) == want:
                if state is None or w["state"] == state:
                    return w
        return None

    return eventually(find, 30, f"{workid} with {want} counters")


def test_worker_counters_merge_and_ride_with_its_progress(live_url):
    job = Job.create(live_url, desc="counters")
    with job.worker("w1", total=10, min_interval=0) as w:
        w.counters({"Example Counter": (3, "red")}, stage="flag")
        w.update(5)
        w.counters(stage="calibrate", files=7)  # the others stay as they are
        w.flush()
        entry = counters_of(job, "w1", 3)
    assert entry["current"] == 5
    assert entry["counters"] == [
        {"name": "Example Counter", "value": 3, "colour": "red"},
        {"name": "stage", "value": "calibrate", "colour": None},
        {"name": "files", "value": 7, "colour": None},
    ]
    assert counters_of(job, "w1", 3, "done")["counters"] == entry["counters"]


def test_a_bad_counter_costs_the_worker_that_counter_only(live_url, caplog):
    job = Job.create(live_url, desc="bad counters")
    w = job.worker("w1", total=4, min_interval=0)
    w.counters({"ok": 1, "bad": (2, "not a colour"), "": 3, "nan": float("nan")})
    w.update(2)
    w.close()
    entry = counters_of(job, "w1", 2)
    assert entry["current"] == 2
    assert [(c["name"], c["value"], c["colour"]) for c in entry["counters"]] == [
        ("ok", 1, None),
        ("bad", 2, None),  # sent without its colour
    ]


def test_progress_update_with_counters(live_url):
    job = Job.create(live_url, desc="cli counters")
    code, _, err = finish(
        progress_cli(
            "--url", live_url, "update", job.jobid, "w1", "1", "4",
            "--counter", "files=3:red", "--counter", "Random Char=Q", "--counter", "t=12:30",
        )
    )  # fmt: skip
    assert code == 0, err
    assert counters_of(job, "w1", 3)["counters"] == [
        {"name": "files", "value": 3, "colour": "red"},
        {"name": "Random Char", "value": "Q", "colour": None},
        {"name": "t", "value": "12:30", "colour": None},
    ]
    code, _, err = finish(
        progress_cli("--url", live_url, "update", job.jobid, "w1", "1", "4", "--counter", "x")
    )
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = finish(
        progress_cli(
            "--url", live_url, "update", job.jobid, "w1", "1", "4", "--counter", "x=1:teal0"
        )
    )
    assert code == 0, err  # "teal0" is no colour word: the value is the text "1:teal0"


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_job_env_hands_a_worker_its_update_url(live_url, secret):
    job = Job.create(live_url, desc="env", secret=secret)
    env = job.env("rank 7")
    assert env["PROGRESS_WORKID"] == "rank 7"
    query = parse_qs(urlsplit(env["PROGRESS_UPDATE_URL"]).query)
    assert query["jobid"] == [job.jobid] and query["workid"] == ["rank 7"]
    assert query.get("secret") == ([secret] if secret else None)
    assert "PROGRESS_UPDATE_URL" not in job.env()  # no worker, no update URL


def test_progress_run_hands_the_command_its_update_url(live_url):
    job = Job.create(live_url, desc="run with counters", secret="k")
    script = (
        "import os, requests; "
        "r = requests.post(os.environ['PROGRESS_UPDATE_URL'], "
        "json={'counters': {'Example Counter': [1, 'blue']}}); "
        "assert r.status_code == 202, r.text"
    )
    code, _, err = finish(
        progress_cli(
            "--url", live_url, "run", job.jobid, "node7", "--secret", "k", "--",
            sys.executable, "-c", script, env=clean_env(),
        )
    )  # fmt: skip
    assert code == 0, err
    entry = counters_of(job, "node7", 1, "done")
    assert entry["counters"] == [{"name": "Example Counter", "value": 1, "colour": "blue"}]
