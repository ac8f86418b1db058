"""The `progress` command end to end against the live service (and a dead port)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from progress_client import Job
from progress_client.cli import main

from .conftest import eventually


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def report(url: str, jobid: str, workid: str, current: int, total: int, *extra: str) -> None:
    code = main(["--url", url, "update", jobid, workid, str(current), str(total), *extra])
    assert code == 0


def states(url: str, jobid: str) -> dict:
    return {w["workid"]: w["state"] for w in Job(url, jobid).status()["workers"]}


@pytest.fixture
def cli_job(live_url, capsys) -> str:
    code, out, err = run(capsys, "--url", live_url, "create", "--desc", "cli test")
    assert code == 0
    return out.strip()


def test_no_url_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("PROGRESS_URL", raising=False)
    code, out, err = run(capsys, "info", "somejob")
    assert code == 2 and out == ""
    assert "PROGRESS_URL" in err and "--url" in err and len(err.strip().splitlines()) == 1


def test_url_from_the_environment_and_after_the_command(live_url, capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_URL", live_url)
    code, out, _ = run(capsys, "create", "--jobid", "cli env: x/y+z", "-q")
    assert (code, out) == (0, "cli env: x/y z\n")  # the id as stored: `+` is a space
    monkeypatch.setenv("PROGRESS_URL", "http://127.0.0.1:9/nowhere")
    code, out, _ = run(capsys, "info", "cli env: x/y+z", "--url", live_url)
    assert code == 0 and "cli env: x/y z" in out  # found by the id as given


def test_create_prints_the_id_and_the_page_url(live_url, capsys):
    code, out, err = run(capsys, "--url", live_url, "create", "--desc", "made by cli")
    assert code == 0
    jobid = out.strip()
    assert jobid.count(":") >= 3 and len(out.splitlines()) == 1
    assert f"{live_url}/progress/show?" in err
    assert Job(live_url, jobid).status()["desc"] == "made by cli"

    code, out, err = run(
        capsys, "--url", live_url, "create", "--jobid", "cli: a b+c/ü", "--maxage", "3600",
        "--print-url",
    )  # fmt: skip
    assert code == 0 and err == ""
    jobid, page = out.splitlines()
    assert jobid == "cli: a b c/ü"  # as the service stores it: `+` is a space
    assert parse_qs(urlsplit(page).query)["jobid"] == ["cli: a b c/ü"]
    assert Job(live_url, jobid).status()["maxage"] == 3600


def test_update_info_pending(live_url, cli_job, capsys):
    report(live_url, cli_job, "node1", 5, 22, "--desc", "lots of RFI")
    report(live_url, cli_job, "node2", 22, 22)
    report(live_url, cli_job, "node3", 10, 20, "--failed", "--desc", "crashed")
    eventually(lambda: len(states(live_url, cli_job)) == 3, 30, "three workers")

    code, out, _ = run(capsys, "--url", live_url, "info", cli_job)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("node")}
    assert (
        "22.7%" in rows["node1"] and "running" in rows["node1"] and "lots of RFI" in rows["node1"]
    )
    assert "100.0%" in rows["node2"] and "done" in rows["node2"]
    assert "failed" in rows["node3"] and "crashed" in rows["node3"]
    # The summary line, then the lifetimes lines (node1 runs longer than any finished worker).
    summary = next(line for line in out.splitlines() if line.startswith("overall"))
    assert "running longer than any finished worker: node1" in out
    assert summary.startswith("overall 57.6%") and "1 running, 1 done, 1 failed, 0 stale" in summary
    assert "ETA" in summary

    code, out, _ = run(capsys, "--url", live_url, "pending", cli_job)
    assert (code, out.splitlines()) == (0, ["node1", "node3"])


def test_info_json_is_the_status_document(live_url, cli_job, capsys):
    import json

    code, out, _ = run(capsys, "--url", live_url, "info", cli_job, "--json")
    assert code == 0 and json.loads(out)["jobid"] == cli_job


def test_info_escapes_control_characters_from_workers(live_url, cli_job, capsys):
    report(live_url, cli_job, "w1", 1, 2, "--desc", "tab\there")
    eventually(lambda: states(live_url, cli_job), 30, "the worker")
    code, out, _ = run(capsys, "--url", live_url, "info", cli_job)
    assert code == 0 and "tab\\there" in out and "\t" not in out


def test_ls_lists_recent_jobs(live_url, cli_job, capsys):
    code, out, _ = run(capsys, "--url", live_url, "ls", "--limit", "200")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["JOBID", "CREATED", "WORKERS"]
    assert any(row.startswith(cli_job + " ") for row in rows)

    code, out, _ = run(capsys, "--url", live_url, "ls", "--limit", "1")
    assert code == 0 and len(out.splitlines()) == 2


def test_show_url_encodes_the_id(capsys):
    code, out, _ = run(capsys, "--url", "http://h:1/", "show-url", "a b:c/d+e,ü", "--interval", "5")
    assert code == 0
    parts = urlsplit(out.strip())
    assert (parts.netloc, parts.path) == ("h:1", "/progress/show")
    assert parse_qs(parts.query) == {"jobid": ["a b:c/d+e,ü"], "interval": ["5"]}
    code, out, _ = run(capsys, "--url", "http://h:1", "show-url", "j", "--render")
    assert out.strip() == "http://h:1/progress/render?jobid=j"


def test_wait_exit_codes(live_url, cli_job, capsys, dead_url):
    wait = ["--url", live_url, "wait", cli_job, "--interval", "0.2", "-q"]
    assert run(capsys, *wait, "--timeout", "1")[0] == 3  # no worker has reported yet

    report(live_url, cli_job, "a", 1, 2)
    eventually(lambda: states(live_url, cli_job) == {"a": "running"}, 30, "a running")
    assert run(capsys, *wait, "--timeout", "1")[0] == 3

    report(live_url, cli_job, "a", 2, 2)
    eventually(lambda: states(live_url, cli_job) == {"a": "done"}, 30, "a done")
    assert run(capsys, *wait, "--timeout", "30")[0] == 0
    assert run(capsys, *wait, "--timeout", "1", "--workers", "2")[0] == 3

    report(live_url, cli_job, "b", 1, 2, "--failed", "--desc", "oom")
    eventually(lambda: states(live_url, cli_job).get("b") == "failed", 30, "b failed")
    code, _, err = run(capsys, *wait, "--timeout", "30")
    assert code == 1 and "b (oom)" in err

    code, _, err = run(capsys, "--url", live_url, "wait", "cli test: no such job")
    assert code == 4 and "cli test: no such job" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--url", dead_url, "wait", cli_job, "--timeout", "30")
    assert code == 69 and "cannot reach" in err


def test_wait_blocks_until_the_last_worker_finishes(live_url, cli_job):
    report(live_url, cli_job, "slow", 0, 3)
    eventually(lambda: states(live_url, cli_job), 30, "the worker")
    waiter = subprocess.Popen(
        [sys.executable, "-m", "progress_client", "--url", live_url, "wait", cli_job,
         "--interval", "0.2", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)
        assert waiter.poll() is None, "wait returned while a worker was still running"
        for step in (1, 2, 3):
            report(live_url, cli_job, "slow", step, 3)
        assert waiter.wait(60) == 0
        assert "all 1 worker(s) done" in waiter.stderr.read()
    finally:
        waiter.kill()
        waiter.wait()


def test_update_errors_are_one_line_with_an_exit_code(live_url, dead_url, capsys):
    code, _, err = run(capsys, "--url", live_url, "update", "cli: never created", "w", "1", "2")
    assert code == 4 and len(err.strip().splitlines()) == 1

    code, _, err = run(capsys, "--url", dead_url, "update", "j", "w", "1", "2")
    assert code == 69 and "cannot reach" in err and len(err.strip().splitlines()) == 1

    code, _, err = run(capsys, "--url", dead_url, "update", "j", "w", "1", "2", "--best-effort")
    assert code == 0 and "not delivered" in err

    code, _, err = run(capsys, "--url", live_url, "update", "j", "w", "one", "2")
    assert code == 2 and "not a number" in err

    code, _, err = run(capsys, "--url", live_url, "update", "cli: never created", "w", "1", "0")
    assert code in (1, 4) and "total" in err  # the service names the bad parameter


def test_help_texts(capsys):
    assert run(capsys, "--help")[0] == 0
    commands = ("create", "update", "show-url", "ls", "info", "pending", "wait", "delete", "run")
    for command in commands:
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and f"usage: progress {command}" in out


def test_console_script_is_installed(live_url):
    script = Path(sys.executable).with_name("progress")
    done = subprocess.run(
        [str(script), "--url", live_url, "create", "--jobid", "cli: console script", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "cli: console script\n", "")


def test_secret_is_sent_with_updates(live_url, capsys):
    job = Job.create(live_url, desc="with secret", secret="s3cret")
    with job.worker("w1", total=2) as w:
        w.advance(2)
    eventually(lambda: states(live_url, job.jobid) == {"w1": "done"}, 30, "w1 done")
    report(live_url, job.jobid, "w2", 1, 2, "--secret", "s3cret")
    eventually(lambda: "w2" in states(live_url, job.jobid), 30, "w2")


def test_a_wrong_secret_is_refused(live_url, capsys):
    job = Job.create(live_url, desc="with secret", secret="s3cret")
    code, _, err = run(
        capsys, "--url", live_url, "update", job.jobid, "w", "1", "2", "--secret", "x"
    )
    assert code == 1 and "403" in err


def test_ls_when_listing_is_switched_off(redis_server, tmp_path, capsys):
    from tests.harness import Service

    service = Service(redis_server.url, tmp_path, {"PROGRESS_LIST_JOBS": "0"}).start("web")
    try:
        code, out, err = run(capsys, "--url", service.url, "ls")
    finally:
        service.stop()
    assert code == 1 and out == ""
    assert "switched off" in err and len(err.strip().splitlines()) == 1
