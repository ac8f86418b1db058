"""Launcher conventions: Job.from_env() and the default worker id, in real subprocesses with the
variables mpirun, srun and SLURM arrays set, under a real multiprocessing pool, and with no
service configured at all."""

from __future__ import annotations

import functools
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from progress_client import Job

from .conftest import eventually

LAUNCHER_VARIABLES = (
    "PROGRESS_URL", "PROGRESS_JOBID", "PROGRESS_SECRET", "PROGRESS_WORKID",
    "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "SLURM_ARRAY_TASK_ID", "SLURM_NTASKS",
    "SLURM_STEP_ID", "SLURM_STEPID",
)  # fmt: skip
# What SLURM exports to the batch script itself (no SLURM_STEP_ID there) and adds in an srun step.
BATCH = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}
SRUN_STEP = {"SLURM_STEP_ID": "0", "SLURM_STEPID": "0", "SLURM_NTASKS": "4"}

REPORT = textwrap.dedent(
    """
    import os
    from progress_client import Job
    with Job.from_env().worker(total=3) as w:
        w.advance(2)
    # One write of the whole line: print() writes the id and the newline apart, and processes
    # started together by a shell loop would interleave them.
    os.write(1, f"{w.workid}\\n".encode())
    """
)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    return {**env, **extra}


def run(script: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize(
    "variables, workid",
    [
        ({"PROGRESS_WORKID": "flagger 1", "OMPI_COMM_WORLD_RANK": "5"}, "flagger 1"),
        ({"OMPI_COMM_WORLD_RANK": "5", "PMI_RANK": "6"}, "5"),
        ({"PMI_RANK": "6", "SLURM_PROCID": "7", **SRUN_STEP}, "6"),
        ({**SRUN_STEP, "SLURM_PROCID": "7"}, "7"),
        ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, "12"),
        ({"SLURM_ARRAY_TASK_ID": "12", **BATCH}, "12"),  # the array task's batch script
        ({"SLURM_ARRAY_TASK_ID": "12", **SRUN_STEP, "SLURM_PROCID": "3"}, "12.3"),
        # mpirun inside an array task: every rank would otherwise be "12", overwriting one row
        ({"SLURM_ARRAY_TASK_ID": "12", **BATCH, "OMPI_COMM_WORLD_RANK": "2"}, "12.2"),
        ({"SLURM_ARRAY_TASK_ID": "12", **BATCH, "PMI_RANK": "5"}, "12.5"),
    ],
)
def test_worker_id_comes_from_the_launchers_variables(live_url, variables, workid):
    job = Job.create(live_url, desc="ranks")
    done = run(REPORT, clean_env(**job.env(), **variables))
    assert done.stdout.strip() == workid
    rows = eventually(lambda: job.status()["workers"], 30, "the worker's row")
    assert [(r["workid"], r["state"]) for r in rows] == [(workid, "done")]


def test_without_a_rank_the_id_is_host_and_pid(live_url):
    job = Job.create(live_url, desc="host:pid")
    script = REPORT + "import os; print(os.getpid())\n"
    workid, pid = run(script, clean_env(**job.env())).stdout.split()
    host = socket.gethostname().split(".")[0]
    assert workid == f"{host}:{pid}"
    eventually(lambda: job.status()["counts"]["done"] == 1, 30, "the worker done")


@pytest.mark.parametrize(
    "step", [{}, {"SLURM_STEP_ID": "4294967294"}], ids=["batch script", "batch step id"]
)
def test_a_shell_loop_in_a_batch_script_gives_each_process_its_own_id(live_url, step):
    """SLURM exports SLURM_PROCID=0 to the batch script too: outside an srun step it is no rank,
    and processes started by a loop there must not all become worker "0"."""
    job = Job.create(live_url, desc="shell loop in sbatch")
    loop = 'for i in 1 2 3; do "$PY" -c "$REPORT" & done; wait'
    env = clean_env(**job.env(), **BATCH, **step, PY=sys.executable, REPORT=REPORT)
    done = subprocess.run(["sh", "-c", loop], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    workids = done.stdout.split()
    host = socket.gethostname().split(".")[0]
    assert len(set(workids)) == 3 and all(w.startswith(f"{host}:") for w in workids), workids
    eventually(lambda: job.status()["counts"]["done"] == 3, 30, "three workers done")


def pool_task(item: int) -> str:
    with Job.from_env().worker(total=1) as w:
        w.advance()
    return w.workid


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool_workers_report_as_their_processes(live_url, method, monkeypatch):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    job = Job.create(live_url, desc=f"pool {method}")
    for name, value in clean_env(**job.env()).items():
        monkeypatch.setenv(name, value)
    for name, value in {**SRUN_STEP, "SLURM_PROCID": "4"}.items():
        monkeypatch.setenv(name, value)  # every pool process inherits the same srun rank
    with multiprocessing.get_context(method).Pool(3) as pool:
        workids = set(pool.map(pool_task, range(12), chunksize=1))
    assert all(w.startswith("4:") for w in workids), workids  # rank:pid, one per process
    assert 1 <= len(workids) <= 3

    def all_done():
        status = job.status()
        return status["counts"]["done"] == len(workids) and status

    status = eventually(all_done, 30, "every pool process done")
    assert {r["workid"] for r in status["workers"]} == workids


def test_without_progress_url_reporting_is_a_silent_no_op():
    script = textwrap.dedent(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
        from progress_client import Job, flush
        for n in range(3):
            job = Job.from_env()
            with job.worker(f"w{n}", total=5) as w:
                for _ in w.track(range(5)):
                    pass
            w.fail("ignored")
            assert w.flush(1) and flush(1)
        try:
            job.status()
        except Exception as exc:
            print("status:", type(exc).__name__)
        print("enabled:", job.enabled)
        """
    )
    done = run(script, clean_env())
    log_lines = [line for line in done.stderr.splitlines() if line.startswith("LOG")]
    assert len(log_lines) == 1 and "PROGRESS_URL is not set" in log_lines[0], done.stderr
    assert "status: ProgressError" in done.stdout and "enabled: False" in done.stdout
    assert "Traceback" not in done.stderr


def test_from_env_attaches_with_url_and_jobid(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROGRESS_URL", "http://progress.example:8080/")
    monkeypatch.setenv("PROGRESS_JOBID", "obs 1234")
    monkeypatch.setenv("PROGRESS_SECRET", "s")
    job = Job.from_env()
    assert (job.enabled, job.base_url, job.jobid, job.secret) == (
        True, "http://progress.example:8080", "obs 1234", "s",
    )  # fmt: skip
    monkeypatch.delenv("PROGRESS_JOBID")
    assert Job.from_env().enabled is False


def file_task(job: Job, gate: str, index: int) -> str:
    """A pool task that is one worker of its own, named after the task (the README's pattern);
    the task that `gate` names ("5:/path") waits until that file exists before it reports at
    all, so that its worker is silent meanwhile, as one still queued in the pool would be."""
    waits_for = gate.split(":", 1)[1] if gate.startswith(f"{index}:") else ""
    while waits_for and not os.path.exists(waits_for):
        time.sleep(0.05)
    with job.worker(f"file-{index}", total=1) as w:
        w.advance()
    return w.workid


def test_a_pool_with_one_worker_per_task_is_complete_only_after_the_last_task(live_url, tmp_path):
    """The pattern the README gives for a pool: per-task ids and workers=N. Rows of finished
    tasks read done, but the job is not complete while a task has not reported yet (waiting for
    a pool process to start it)."""
    tasks = 6
    job = Job.create(live_url, desc="pool, one worker per task", workers=tasks)
    gate = tmp_path / "last task may finish"
    task = functools.partial(file_task, job, f"{tasks - 1}:{gate}")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        result = pool.map_async(task, range(tasks), chunksize=1)
        status = eventually(
            lambda: (s := job.status())["counts"]["done"] == tasks - 1 and s, 60, "5 tasks done"
        )
        # Every worker that reported is done: only workers=N keeps the job from complete.
        assert (status["workers_reported"], status["workers_silent"]) == (tasks - 1, 1), status
        assert status["complete"] is False, status
        assert status["workers_expected"] == tasks
        gate.touch()
        assert sorted(result.get(60)) == sorted(f"file-{i}" for i in range(tasks))
    status = eventually(lambda: (s := job.status())["complete"] and s, 30, "the job complete")
    assert status["counts"]["done"] == tasks and status["workers_silent"] == 0
