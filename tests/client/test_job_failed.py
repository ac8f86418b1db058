"""A job that fails as a whole, the way watchbot's users work: a map over 200 parts in which one
bad part stops the rest (`fail_job_on`), the launcher failing a job (`Job.fail`,
`progress fail`), and `progress wait` and `progress run` seeing it. Against the live service."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from progress_client import Job, JobFailed, JobNotFound, RequestRejected

from .conftest import eventually
from .test_cli_jobs import progress

PARTS = 200
BAD_PART = 17


def map_part(job: Job, part: int, ran: list[int]) -> str:
    """One part of the map, as a watchbot worker processes it: 'done', 'raised' (the bad
    input), or 'skipped' (JobFailed at entry)."""
    try:
        with job.worker(part, total=1, fail_job_on=(ValueError,)) as w:
            ran.append(part)
            if part == BAD_PART:
                raise ValueError(f"part {part}: corrupt input")
            w.advance()
    except JobFailed:
        return "skipped"
    except ValueError:
        return "raised"
    return "done"


def test_a_bad_part_fails_the_job_and_every_later_part_is_skipped(live_url):
    job = Job.create(live_url, desc="watchbot map", workers=PARTS, meta={"parts": PARTS})
    ran: list[int] = []
    outcomes = [map_part(job, part, ran) for part in range(PARTS)]

    assert outcomes[:BAD_PART] == ["done"] * BAD_PART
    assert outcomes[BAD_PART] == "raised"
    assert outcomes[BAD_PART + 1 :] == ["skipped"] * (PARTS - BAD_PART - 1)
    assert ran == list(range(BAD_PART + 1))  # no skipped part ran its block
    failure = job.failed()
    assert failure["by"] == "worker" and failure["workid"] == str(BAD_PART)
    assert failure["reason"] == f"ValueError: part {BAD_PART}: corrupt input"

    def reported():
        status = job.status()
        return status if status["counts"]["done"] == BAD_PART else None

    status = eventually(reported, 30, "the parts before the bad one")
    # Skipped parts report nothing: the job shows them as not reported, and is not complete.
    assert status["counts"]["failed"] + status["counts"]["done"] <= BAD_PART + 1
    assert status["workers_silent"] >= PARTS - BAD_PART - 1
    assert status["complete"] is False and status["meta"] == {"parts": PARTS}


def pool_part(args: tuple) -> tuple[int, str, float, float]:
    """In a pool process: the part's outcome, when its worker was asked for, and when the part
    was over (for the bad part: after its worker failed the job)."""
    url, jobid, part = args
    entered = time.time()
    outcome = map_part(Job(url, jobid), part, [])
    return part, outcome, entered, time.time()


def test_a_pool_of_processes_stops_starting_parts_once_one_failed_the_job(live_url):
    job = Job.create(live_url, desc="watchbot pool")
    ctx = multiprocessing.get_context("spawn")  # no threads of this process carried over
    with ctx.Pool(4) as pool:
        results = pool.map(pool_part, [(live_url, job.jobid, p) for p in range(PARTS)], 1)
    outcomes = {part: outcome for part, outcome, _, _ in results}
    assert outcomes[BAD_PART] == "raised"
    assert job.failed()["workid"] == str(BAD_PART)
    # Every part started once the bad one had failed the job was skipped, never run; parts
    # already running then finished. (The pool's processes share this machine's clock.)
    failed_by = next(left for part, _, _, left in results if part == BAD_PART)
    later = [outcome for _, outcome, entered, _ in results if entered > failed_by]
    assert later and set(later) == {"skipped"}
    assert list(outcomes.values()).count("skipped") >= PARTS // 2


def test_without_fail_job_on_a_failed_part_fails_only_itself(live_url):
    job = Job.create(live_url, desc="no fail_job_on")
    with pytest.raises(ValueError):
        with job.worker("a", total=1):
            raise ValueError("bad")
    assert job.failed() is None
    with job.worker("b", total=1) as w:  # neither asked for nor stopped
        w.advance()


def test_the_launcher_fails_a_job_and_running_workers_can_ask(live_url):
    job = Job.create(live_url, desc="launcher fail")
    running = Job(live_url, job.jobid).worker("long", total=10)
    assert job.failed() is None
    failure = job.fail("input bucket is gone")
    assert (failure["by"], failure["workid"], failure["reason"]) == (
        "launcher",
        None,
        "input bucket is gone",
    )
    assert Job(live_url, job.jobid).failed() == failure  # what the running worker asks
    running.close()
    with pytest.raises(JobFailed) as raised:
        Job(live_url, job.jobid).worker("next", check_job=True)
    assert raised.value.by == "launcher" and raised.value.reason == "input bucket is gone"
    assert "input bucket is gone" in str(raised.value)
    assert job.fail("again") == failure  # the first failure stands


def test_a_protected_job_is_failed_only_with_its_secret(live_url):
    job = Job.create(live_url, desc="protected", secret="s3")
    with pytest.raises(RequestRejected) as refused:
        Job(live_url, job.jobid).fail("no secret")
    assert refused.value.status == 403
    assert job.failed() is None
    job.fail("with it")
    assert job.failed()["reason"] == "with it"


def test_failing_an_unknown_job_raises_job_not_found(live_url):
    with pytest.raises(JobNotFound):
        Job(live_url, "never created: fail").fail("x")


def test_a_service_that_cannot_tell_does_not_stop_the_work(dead_url):
    with Job(dead_url, "j").worker("w", total=1, check_job=True, timeout=0.5) as w:
        w.advance()  # reached: the check could not be made, so the part runs


# -- the command line -----------------------------------------------------------------------------
def test_progress_fail_then_wait_exits_1_and_run_refuses(live_url, tmp_path):
    job = Job.create(live_url, desc="cli fail")
    url = ["--url", live_url]
    marker = tmp_path / "ran"
    command = ["--", "sh", "-c", f"touch {marker}"]
    assert progress(*url, "run", job.jobid, "before", *command)[0] == 0
    assert marker.exists()
    marker.unlink()

    code, out, err = progress(*url, "fail", job.jobid, "--reason", "corrupt input", "--workid", "7")
    assert code == 0 and "corrupt input" in err

    code, _, err = progress(*url, "wait", job.jobid, "--timeout", "30", "--interval", "0.2")
    assert code == 1 and "job failed as a whole, by worker '7': corrupt input" in err
    code, _, err = progress(*url, "run", job.jobid, "after", *command)
    assert code == 1 and "not running 'sh'" in err and "corrupt input" in err
    assert not marker.exists()
    code, out, _ = progress(*url, "info", job.jobid)
    assert code == 0 and "job failed as a whole" in out


def test_progress_fail_of_an_unknown_job_exits_4(live_url):
    code, _, err = progress("--url", live_url, "fail", "never created: cli", "--reason", "x")
    assert code == 4 and "never created: cli" in err
