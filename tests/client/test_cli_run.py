"""`progress run`: real commands that succeed, fail, are killed or do not exist, each checked in
the service's status JSON, and the exit status a shell would give."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios

import pytest
from progress_client import Job, _sender
from progress_client.cli import main

from .conftest import eventually


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the variables the CLI and the client read, plus `extra`."""
    launcher = (
        "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "SLURM_ARRAY_TASK_ID", "SLURM_NTASKS",
        "SLURM_STEP_ID", "SLURM_STEPID",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRESS_")}
    env = {k: v for k, v in env.items() if k not in launcher}
    return {**env, **extra}


def progress_cli(*argv: str, env: dict | None = None, **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "progress_client", *argv],
        env=clean_env() if env is None else env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def finish(proc: subprocess.Popen, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = proc.communicate(stdin, timeout=60)
    assert "Traceback" not in err
    return proc.returncode, out, err


def worker_of(url: str, jobid: str, workid: str, state: str) -> dict:
    """The worker's entry in the status JSON, once it is in `state`."""

    def find():
        workers = {w["workid"]: w for w in Job(url, jobid).status()["workers"]}
        found = workers.get(workid)
        return found if found and found["state"] == state else None

    return eventually(find, 30, f"{workid} {state}")


@pytest.fixture
def job(live_url) -> Job:
    return Job.create(live_url, desc="progress run")


def test_a_command_that_succeeds_is_done_and_shares_the_terminal(live_url, job):
    shell = "read line; echo out:$line; echo err >&2"
    proc = progress_cli(
        "--url", live_url, "run", job.jobid, "w1", "--", "sh", "-c", shell, stdin=subprocess.PIPE
    )
    assert finish(proc, "hello\n") == (0, "out:hello\n", "err\n")
    w = worker_of(live_url, job.jobid, "w1", "done")
    assert (w["percent"], w["ok"]) == (100, True)
    assert w["desc"] == f"sh -c '{shell}'"  # the command line, while it ran and after


def test_a_failing_command_is_failed_with_its_exit_status(live_url, job):
    proc = progress_cli("--url", live_url, "run", job.jobid, "w3", "--", "sh", "-c", "exit 3")
    assert finish(proc)[0] == 3
    w = worker_of(live_url, job.jobid, "w3", "failed")
    assert (w["ok"], w["desc"]) == (False, "exit 3")


def test_a_killed_command_is_failed_with_the_signal_name(live_url, job):
    proc = progress_cli("--url", live_url, "run", job.jobid, "k", "--", "sh", "-c", "kill -9 $$")
    assert finish(proc)[0] == 128 + signal.SIGKILL
    assert worker_of(live_url, job.jobid, "k", "failed")["desc"] == "killed by SIGKILL"


def test_a_missing_command_is_failed_with_127_like_a_shell(live_url, job):
    proc = progress_cli("--url", live_url, "run", job.jobid, "m", "--", "no-such-command-x7")
    code, out, err = finish(proc)
    assert code == 127 and "no-such-command-x7" in err and len(err.strip().splitlines()) == 1
    assert worker_of(live_url, job.jobid, "m", "failed")["desc"].startswith("exit 127")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_progress_run_is_passed_to_the_command(live_url, job, signum):
    # A session of its own: no controlling terminal, so SIGINT is not one typed at a keyboard.
    proc = progress_cli(
        "--url", live_url, "run", job.jobid, "s", "--", "sleep", "120", start_new_session=True
    )
    try:
        worker_of(live_url, job.jobid, "s", "running")
        proc.send_signal(signum)
        code, _, _ = finish(proc)
    finally:
        proc.kill()
        proc.wait()
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert worker_of(live_url, job.jobid, "s", "failed")["desc"] == f"killed by {name}"


def test_job_and_worker_ids_from_the_launchers_environment(live_url, job):
    srun_step = {"SLURM_PROCID": "5", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "8"}
    env = clean_env(PROGRESS_URL=live_url, PROGRESS_JOBID=job.jobid, **srun_step)
    assert finish(progress_cli("run", "--", "true", env=env))[0] == 0
    worker_of(live_url, job.jobid, "5", "done")

    env["PROGRESS_WORKID"] = "named"
    assert finish(progress_cli("run", "--", "true", env=env))[0] == 0
    worker_of(live_url, job.jobid, "named", "done")


def test_usage_errors_run_nothing(live_url, job, tmp_path):
    marker = tmp_path / "ran"
    touch = ["--", "touch", str(marker)]
    cases = [
        ["--url", live_url, "run", *touch],  # no job id, none in the environment
        ["run", job.jobid, *touch],  # no URL
        ["--url", live_url, "run", job.jobid, "w"],  # no command
        ["--url", live_url, "run", job.jobid, "w", "--"],  # an empty one
        ["--url", live_url, "run", job.jobid, "w", "--heartbeat", "0", *touch],
    ]
    for argv in cases:
        code, out, err = finish(progress_cli(*argv))
        assert code == 2 and out == "" and "error" in err, argv
    assert not marker.exists()


def test_the_command_still_runs_when_the_service_is_down(dead_url, tmp_path):
    marker = tmp_path / "ran"
    argv = ["--url", dead_url, "run", "job", "w", "--flush-timeout", "1", "--"]
    code, _, err = finish(progress_cli(*argv, "sh", "-c", f"touch {marker}; exit 5"))
    assert code == 5 and marker.exists()


def test_a_long_command_keeps_reporting_so_it_never_looks_stale(live_url, job):
    argv = ["--url", live_url, "run", job.jobid, "long", "--heartbeat", "0.2", "--"]
    proc = progress_cli(*argv, "sleep", "120", start_new_session=True)
    try:
        first = worker_of(live_url, job.jobid, "long", "running")["updated"]

        def sent_again() -> bool:
            return worker_of(live_url, job.jobid, "long", "running")["updated"] > first

        eventually(sent_again, 30, "the running state sent again")
    finally:
        proc.kill()
        proc.wait()


# Says "ready", then "INT" for each SIGINT; once one has come, waits a moment for a second.
COUNT_SIGINTS = """
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda *a: (got.append(1), print("INT", flush=True)))
print("ready", flush=True)
while not got:
    time.sleep(0.05)
time.sleep(1)
sys.exit(len(got))
"""


def read_until(fd: int, text: bytes, seconds: float) -> bytes:
    """What the terminal shows until `text` appears, or `seconds` of silence."""
    seen = b""
    while text not in seen and select.select([fd], [], [], seconds)[0]:
        seen += os.read(fd, 1024)
    return seen


def test_ctrl_c_in_a_terminal_is_not_passed_on_twice(live_url, job):
    # A real terminal: `progress run` leads a session whose controlling terminal is a pty, as
    # in an interactive shell, where ^C is the line discipline's SIGINT to the whole group.
    master, slave = pty.openpty()
    argv = ["--url", live_url, "run", job.jobid, "tty", "--", sys.executable, "-c", COUNT_SIGINTS]
    proc = subprocess.Popen(
        [sys.executable, "-m", "progress_client", *argv],
        env=clean_env(), stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    try:
        assert b"ready" in read_until(master, b"ready", 30)
        # progress's own copy of a ^C: the command has its copy from the terminal already.
        proc.send_signal(signal.SIGINT)
        assert b"INT" not in read_until(master, b"INT", 1)
        os.write(master, b"\x03")
        assert proc.wait(60) == 1  # the command got the terminal's SIGINT, once
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    assert worker_of(live_url, job.jobid, "tty", "failed")["desc"] == "exit 1"


SHOW_IGNORED = """
import signal
print(*(s.name for s in (signal.SIGHUP, signal.SIGINT) if signal.getsignal(s) == signal.SIG_IGN))
"""


def test_signals_ignored_by_nohup_and_background_stay_ignored_by_the_command(live_url, job):
    # `nohup` ignores SIGHUP, and a script's `&` ignores SIGINT: the command must inherit both.
    argv = ["--url", live_url, "run", job.jobid, "bg", "--", sys.executable, "-c", SHOW_IGNORED]
    cli = [sys.executable, "-m", "progress_client", *argv]
    proc = subprocess.Popen(
        ["sh", "-c", 'nohup "$@" & wait $!', "sh", *cli],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert finish(proc)[:2] == (0, "SIGHUP SIGINT\n")


def test_run_called_in_process_leaves_the_environment_alone(dead_url, monkeypatch):
    """`progress run` has waited for its last report itself, so it turns the exit flush off;
    a program calling main() must not find $PROGRESS_FLUSH_TIMEOUT changed behind its back
    (its own children would inherit it)."""
    monkeypatch.delenv("PROGRESS_FLUSH_TIMEOUT", raising=False)
    before = dict(os.environ)
    argv = ["--url", dead_url, "run", "job", "w", "--flush-timeout", "0.1", "--", "true"]
    try:
        assert main(argv) == 0
        assert dict(os.environ) == before
        assert _sender._exit_timeout() == 0  # the exit flush will not wait again
    finally:
        _sender.set_exit_flush_timeout(None)
    assert _sender._exit_timeout() == _sender.DEFAULT_EXIT_FLUSH


def test_run_called_in_process_keeps_the_exit_flush_once_its_report_is_delivered(live_url):
    """A program calling main() keeps its exit flush for what it reports later, when `run`'s
    own last report went through."""
    job = Job.create(live_url, desc="run in process")
    assert main(["--url", live_url, "run", job.jobid, "w", "--", "true"]) == 0
    assert _sender._exit_timeout() == _sender.DEFAULT_EXIT_FLUSH
