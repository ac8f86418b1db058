"""The `progress` command as scripts use it: exit codes from a real subprocess, `--json` output
parsed, $PROGRESS_JOBID, `delete`, and jobs that expect a number of workers."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
import requests
from progress_client import Job

from .conftest import eventually
from .test_cli_run import clean_env, finish, progress_cli

UNAVAILABLE = 69


def progress(*argv: str, **env: str) -> tuple[int, str, str]:
    return finish(progress_cli(*argv, env=clean_env(**env)))


def states(url: str, jobid: str) -> dict:
    return {w["workid"]: w["state"] for w in Job(url, jobid).status()["workers"]}


def report(url: str, jobid: str, workid: str, current: int, total: int, *extra: str) -> None:
    assert progress("--url", url, "update", jobid, workid, str(current), str(total), *extra)[0] == 0


@pytest.fixture
def job(live_url) -> Job:
    return Job.create(live_url, desc="cli jobs")


COMMANDS_WITH_A_JOB = [
    ["info"], ["pending"], ["wait", "--timeout", "5"], ["delete"],
    ["update", "w", "1", "2"], ["info", "--json"], ["pending", "--json"],
]  # fmt: skip


@pytest.mark.parametrize("argv", COMMANDS_WITH_A_JOB + [["ls"], ["create"]])
def test_an_unreachable_service_has_its_own_exit_status(dead_url, argv):
    code, out, err = progress("--url", dead_url, *argv, PROGRESS_JOBID="j")
    assert (code, out) == (UNAVAILABLE, "")
    assert "cannot reach" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", COMMANDS_WITH_A_JOB + [["show-url"]])
def test_a_missing_job_id_is_a_usage_error(live_url, argv):
    code, out, err = progress("--url", live_url, *argv)
    assert (code, out) == (2, "")
    assert "PROGRESS_JOBID" in err and len(err.strip().splitlines()) == 1


def test_the_job_id_from_the_environment(live_url, job):
    env = {"PROGRESS_URL": live_url, "PROGRESS_JOBID": job.jobid}
    assert progress("update", "w1", "2", "2", **env)[0] == 0
    eventually(lambda: states(live_url, job.jobid) == {"w1": "done"}, 30, "w1 done")
    code, out, _ = progress("info", "--json", **env)
    assert code == 0 and json.loads(out)["jobid"] == job.jobid
    assert progress("wait", "--timeout", "30", "-q", **env)[0] == 0
    code, out, _ = progress("show-url", **env)
    assert code == 0 and out.strip() == job.show_link()
    # A job id given on the command line wins over the environment's.
    code, _, err = progress("info", "cli jobs: no such job", **env)
    assert code == 4 and "no such job" in err


def test_json_documents_of_info_pending_wait_and_ls(live_url, job):
    report(live_url, job.jobid, "done1", 4, 4)
    report(live_url, job.jobid, "run1", 1, 4)
    report(live_url, job.jobid, "bad100", 4, 4, "--failed", "--desc", "wrong answer")
    eventually(lambda: len(states(live_url, job.jobid)) == 3, 30, "three workers")
    url = ["--url", live_url]

    code, out, _ = progress(*url, "info", job.jobid, "--json")
    info = json.loads(out)
    assert code == 0 and {w["workid"] for w in info["workers"]} == {"done1", "run1", "bad100"}

    code, out, _ = progress(*url, "pending", job.jobid, "--json")
    pending = json.loads(out)
    assert code == 0 and pending["jobid"] == job.jobid and pending["not_reported"] is None
    assert [(w["workid"], w["state"]) for w in pending["workers"]] == [
        ("bad100", "failed"), ("run1", "running"),
    ]  # fmt: skip

    code, out, err = progress(*url, "wait", job.jobid, "--json", "--timeout", "30", "-q")
    waited = json.loads(out)
    assert (code, waited["outcome"], waited["exit_status"]) == (1, "failed", 1)
    assert waited["status"]["counts"]["failed"] == 1 and "bad100 (wrong answer)" in err

    code, out, _ = progress(*url, "ls", "--json", "--limit", "100")
    assert code == 0 and job.jobid in [j["jobid"] for j in json.loads(out)["jobs"]]


def test_wait_json_on_success_and_timeout(live_url, job):
    wait = ["--url", live_url, "wait", job.jobid, "--json", "--interval", "0.2", "-q"]
    code, out, _ = progress(*wait, "--timeout", "1")
    assert (code, json.loads(out)["outcome"]) == (3, "timeout")
    report(live_url, job.jobid, "w", 1, 1)
    eventually(lambda: states(live_url, job.jobid) == {"w": "done"}, 30, "w done")
    code, out, _ = progress(*wait, "--timeout", "30")
    assert (code, json.loads(out)["outcome"]) == (0, "done")


def test_pending_lists_a_worker_that_failed_at_100_percent(live_url, job):
    report(live_url, job.jobid, "ok", 3, 3)
    report(live_url, job.jobid, "broke", 3, 3, "--failed")
    eventually(lambda: len(states(live_url, job.jobid)) == 2, 30, "two workers")
    code, out, _ = progress("--url", live_url, "pending", job.jobid)
    assert (code, out) == (0, "broke\n")


def test_a_job_created_to_expect_workers_waits_for_them_all(live_url):
    code, jobid, _ = progress("--url", live_url, "create", "--workers", "3", "-q")
    jobid = jobid.strip()
    assert code == 0 and Job(live_url, jobid).status()["workers_expected"] == 3
    report(live_url, jobid, "r0", 1, 1)
    eventually(lambda: states(live_url, jobid) == {"r0": "done"}, 30, "r0 done")

    wait = ["--url", live_url, "wait", jobid, "--interval", "0.2", "--timeout", "1"]
    code, _, err = progress(*wait)
    assert code == 3 and "2 not reported" in err
    code, out, err = progress("--url", live_url, "pending", jobid)
    assert (code, out) == (0, "") and "2 more worker(s)" in err
    assert (
        json.loads(progress("--url", live_url, "pending", jobid, "--json")[1])["not_reported"] == 2
    )

    for rank in ("r1", "r2"):
        report(live_url, jobid, rank, 1, 1)
    eventually(lambda: len(states(live_url, jobid)) == 3, 30, "three workers")
    assert progress(*wait[:-1], "30")[0] == 0


def test_a_bad_expected_count_is_a_usage_error(live_url):
    for bad in ("0", "-1", "two"):
        code, out, err = progress("--url", live_url, "create", "--workers", bad)
        assert (code, out) == (2, "") and "--workers" in err


def test_delete(live_url):
    job = Job.create(live_url, desc="to delete", secret="s3")
    url = ["--url", live_url]
    code, _, err = progress(*url, "delete", job.jobid, "--secret", "wrong")
    assert code == 1 and "403" in err
    assert Job(live_url, job.jobid).status()["jobid"] == job.jobid  # still there

    code, out, err = progress(*url, "delete", job.jobid, PROGRESS_SECRET="s3")
    assert (code, out) == (0, "") and "deleted" in err
    code, _, err = progress(*url, "info", job.jobid)
    assert code == 4
    code, _, err = progress(*url, "delete", job.jobid, "--secret", "s3")
    assert code == 4 and len(err.strip().splitlines()) == 1


class AnswerLosingProxy:
    """An HTTP proxy to the service that forwards every request but drops the first answer
    (closes the connection instead), as a network failure after the request arrived would."""

    def __init__(self, target: str) -> None:
        proxy = self
        self.forwarded = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes | None) -> None:
                headers = {"Content-Type": self.headers.get("Content-Type", "")} if body else {}
                answer = requests.request(
                    self.command, target + self.path, data=body, headers=headers, timeout=30
                )
                proxy.forwarded += 1
                if proxy.forwarded == 1:
                    self.close_connection = True  # the service acted; its answer is lost
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("secret", [None, "s3"], ids=["GET", "POST with secret"])
def test_a_delete_whose_answer_was_lost_succeeds_on_retry(live_url, secret):
    """The first attempt deletes the job but its answer never arrives; the retry then finds no
    job (404). That is the delete having worked, not a missing job (exit 4)."""
    job = Job.create(live_url, desc="delete, answer lost", secret=secret)
    proxy = AnswerLosingProxy(live_url)
    try:
        argv = ["--url", proxy.url, "delete", job.jobid] + (["--secret", secret] if secret else [])
        code, out, err = progress(*argv)
    finally:
        proxy.close()
    assert (code, proxy.forwarded) == (0, 2), err
    assert "deleted" in err
    assert progress("--url", live_url, "info", job.jobid)[0] == 4  # really gone


def test_a_delete_refused_with_503_then_not_found_is_a_missing_job(make_server):
    """A 503 is the service refusing before it acts (Redis down or full): the 404 of the retry
    means the job never existed, exit 4, not a delete that worked."""

    def responder(params, index):
        if index == 0:
            return 503, {"Retry-After": "0"}, {"title": "503 Service Unavailable"}
        return 404, {}, {"title": "Unknown job", "description": "no job 'j'"}

    code, _, err = progress("--url", make_server(responder).url, "delete", "j")
    assert code == 4, err


def test_wait_gives_up_with_the_status_its_help_names_after_max_errors(make_server):
    """The service answers one poll (a job still running), then only 503: after --max-errors
    failed polls in a row `wait` gives up with 69, the status its --help gives."""

    def responder(params, index):
        if index == 0:
            return 200, {}, {"jobid": "j", "complete": False, "counts": {"running": 1}}
        return 503, {}, {"title": "503 Service Unavailable"}

    server = make_server(responder)
    argv = ["--url", server.url, "wait", "j", "--interval", "0.1", "--max-errors", "1"]
    code, _, err = progress(*argv)
    assert code == UNAVAILABLE, err
    code, out, _ = progress("wait", "--help")
    help_text = " ".join(out.split())
    assert f"give up (exit {UNAVAILABLE}) after N failed polls" in help_text, help_text
