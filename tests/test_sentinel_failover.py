"""The store fails over under Redis Sentinel (REDIS_URL=redis+sentinel://...): its master is
killed with SIGKILL while updates stream in, a replica is promoted, and the service follows it by
itself. Meanwhile every answer is a 503 with Retry-After (never a 500), the 503s end within
5 s of the promotion, no process exits, every acknowledged update is on the new master, the old
master restarted empty is never served but joins as a replica, and charts and expiry go on.

The same kill under supervisord and under `make run`, each from a fresh clone: the service
answers again within 5 s of the promotion and nothing was restarted.

The group has two replicas, not one: with PROGRESS_MIN_REPLICAS=1 an update is answered only
once a replica has it, and after the promotion of the only replica the new master has none
until the old one is back, so every update would be refused until then."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from redis import Redis, RedisError

from tasks.runtime import connect
from tasks.settings import Settings
from tests.conftest import FAST
from tests.harness import (
    RedisServer,
    SentinelGroup,
    Service,
    _outside_this_checkout,
    free_port,
    wait_until,
)
from tests.test_supervised import NAMES, Supervised, alive, children_of

pytestmark = pytest.mark.slow

PROMOTED_TO_SERVING = 5.0  # seconds from the promotion to the last answer other than 202
SETTINGS = {**FAST, "PROGRESS_MIN_REPLICAS": "1"}


@dataclass(frozen=True)
class Answer:
    """One update request: what it sent, when (time.monotonic()), and what came back."""

    workid: str
    current: int
    sent: float
    done: float
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    retry_after: str | None
    body: str


@dataclass
class UpdateStream:
    """Updates from a few threads, each thread sending increasing `current` values and moving to
    a new worker every `per_worker` requests, so an update lost just before a kill is a worker
    whose stored state is older than its last 202, not one masked by later updates."""

    url: str
    jobid: str
    threads: int = 3
    per_worker: int = 10
    pause: float = 0.01
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._send, args=(f"t{i}",), daemon=True)
            for i in range(self.threads)
        ]

    def __enter__(self) -> UpdateStream:
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def _send(self, prefix: str) -> None:
        n = 0
        with requests.Session() as session:
            while not self._stop.is_set():
                n += 1
                workid = f"{prefix}-{n // self.per_worker}"
                params = {"jobid": self.jobid, "workid": workid, "current": n, "total": 10**6}
                sent = time.monotonic()
                try:
                    resp = session.get(f"{self.url}/progress/update", params=params, timeout=10)
                    status, retry, body = resp.status_code, resp.headers.get("Retry-After"), ""
                    body = resp.text[:300] if status != 202 else ""
                except requests.RequestException as exc:
                    status, retry, body = 0, None, repr(exc)
                with self._lock:
                    self.answers.append(
                        Answer(workid, n, sent, time.monotonic(), status, retry, body)
                    )
                time.sleep(self.pause if status == 202 else 0.05)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def acknowledged(self) -> dict[str, int]:
        """Each worker's last state answered 202."""
        last: dict[str, int] = {}
        for a in self.snapshot():
            if a.status == 202:
                last[a.workid] = max(a.current, last.get(a.workid, 0))
        return last


@dataclass(frozen=True)
class Failover:
    old: RedisServer
    new_port: int
    killed: float
    promoted: float


def kill_master(group: SentinelGroup) -> Failover:
    """SIGKILL the master and wait for the sentinels to name another (polled every 50 ms)."""
    old = group.master()
    killed = time.monotonic()
    old.proc.kill()
    old.proc.wait(10)
    new_port = wait_until(
        lambda: (port := group.master_port()) not in (None, old.port) and port,
        30,
        interval=0.05,
        what="the sentinels to promote a replica",
    )
    return Failover(old, new_port, killed, time.monotonic())


def first_202_after(stream: UpdateStream, moment: float, timeout: float) -> float:
    """When the first update sent after `moment` was answered 202."""
    return wait_until(
        lambda: min(
            (a.done for a in stream.snapshot() if a.status == 202 and a.sent > moment),
            default=None,
        ),
        timeout,
        what=f"an update answered 202 after the promotion; last answers: {stream.snapshot()[-3:]}",
    )


def last_refusal(answers: list[Answer], since: float) -> Answer | None:
    refused = [a for a in answers if a.status != 202 and a.done > since]
    return max(refused, key=lambda a: a.done, default=None)


def restart_empty(server: RedisServer) -> None:
    """Start a dead server again on its port, with its data gone (a lost disk)."""
    for path in server.data_dir.iterdir():
        if path.name.startswith("appendonly") or path.suffix == ".rdb":
            path.unlink()
    server.start()


def role(server: RedisServer) -> str | None:
    try:
        return server.client().info("replication")["role"]
    except Exception:  # noqa: BLE001 - still starting
        return None


@pytest.fixture
def group(tmp_path):
    group = SentinelGroup(tmp_path / "sentinel", replicas=2).start()
    yield group
    group.stop()


@pytest.fixture
def service(group, tmp_path):
    service = Service(group.url, tmp_path / "service", SETTINGS).start()
    yield service
    service.stop()


def logs(service: Service, lines: int = 30) -> str:
    """Each process's last lines other than its per-request and per-task ones."""
    parts = []
    for name in service.procs:
        kept = [
            line
            for line in service.log(name).splitlines()
            if "event=request " not in line and "event=task " not in line
        ]
        parts.append(f"--- {name}.log, last {lines} lines of note\n" + "\n".join(kept[-lines:]))
    return "\n".join(parts)


def wall(moment: float) -> str:
    """A time.monotonic() reading as the UTC time of day the logs use."""
    at = time.time() - time.monotonic() + moment
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}"


def test_a_held_connection_follows_the_promotion(group):
    """A client holding one connection (as Store's per-thread clients do) reaches the new master
    after the failover, and never the old one restarted empty. redis-py reconnected such a
    connection to the address it had: refused until the old master was back, then served it."""
    client = connect(Settings.from_env({"REDIS_URL": group.url}))
    held = Redis(connection_pool=client.connection_pool, single_connection_client=True)
    held.set("before", "kept")
    failover = kill_master(group)

    def reads_the_new_master():
        try:
            return held.get("before") == b"kept"
        except RedisError:
            return False

    wait_until(reads_the_new_master, PROMOTED_TO_SERVING, what="the held connection to follow")
    assert held.connection.port == failover.new_port
    restart_empty(failover.old)
    for _ in range(10):
        assert held.get("before") == b"kept"
        held.set("after", "written")
        time.sleep(0.2)
    assert held.connection.port == failover.new_port


@pytest.mark.timeout(110)
def test_master_killed_mid_stream(group, service):
    jobid = "failover:stream"
    assert service.get("create", jobid=jobid).status_code == 200
    pids = {name: proc.pid for name, proc in service.procs.items()}

    with UpdateStream(service.url, jobid) as stream:
        wait_until(lambda: len(stream.acknowledged()) >= 5, 20, what="updates before the kill")
        failover = kill_master(group)
        serving = first_202_after(stream, failover.promoted, 10)
        time.sleep(PROMOTED_TO_SERVING + 1)  # any late 503 falls inside what is checked

        # The old master comes back on its port with nothing in it, and is never served: the
        # sentinels make it a replica of the new master.
        restarted = time.monotonic()
        restart_empty(failover.old)
        wait_until(
            lambda: role(failover.old) == "slave", 30, what="the old master to become a replica"
        )
        became_replica = time.monotonic()
        assert group.master_port() == failover.new_port
        time.sleep(2)  # updates go on while it syncs as a replica
    answers = stream.snapshot()
    timeline = (
        f"killed {wall(failover.killed)}, promoted {wall(failover.promoted)}, first 202 "
        f"{wall(serving)}, old master restarted {wall(restarted)}, a replica "
        f"{wall(became_replica)}"
    )

    # (1) While there was no master, every answer was a 503 with Retry-After, never a 500 or a
    # 404, and they ended within 5 s of the promotion.
    refusals = [a for a in answers if a.status != 202]
    wrong = [a for a in refusals if a.status != 503 or not a.retry_after]
    assert not wrong, (
        f"{len(wrong)} answers other than 202 or 503 with Retry-After, from {wall(wrong[0].done)} "
        f"to {wall(wrong[-1].done)}: {wrong[:3]}\n{timeline}\n{logs(service)}"
    )
    last = last_refusal(answers, failover.killed)
    assert last is not None, "the kill refused nothing: was the master killed?"
    window = last.done - failover.promoted
    assert window < PROMOTED_TO_SERVING, (
        f"503s went on {window:.2f} s after the promotion (last: {last})\n{timeline}\n"
        f"{logs(service)}"
    )
    late = [a for a in answers if a.done > restarted and a.status != 202]
    assert not late, f"refused after the restart: {late[:3]}\n{timeline}\n{logs(service)}"
    slowest = max(a.done - a.sent for a in answers)
    assert slowest < 5, f"an update took {slowest:.2f} s to answer"

    # (2) No process exited or was replaced.
    for name, proc in service.procs.items():
        assert proc.pid == pids[name] and proc.poll() is None, f"{name} exited\n{logs(service)}"

    # (3) Every update answered 202 is on the new master: each worker's stored state is its
    # last 202'd one or newer.
    acknowledged = stream.acknowledged()
    behind: dict[str, tuple[int, int | None]] = {}

    def all_applied() -> bool:
        resp = service.get("status", jobid=jobid, workers="all", limit=10000)
        assert resp.status_code == 200, resp.text
        stored = {w["workid"]: w["current"] for w in resp.json()["workers"]}
        behind.clear()
        behind.update(
            {w: (c, stored.get(w)) for w, c in acknowledged.items() if stored.get(w, -1) < c}
        )
        return not behind

    wait_until(
        all_applied,
        30,
        interval=0.5,
        what=f"every acknowledged update applied (worker: (acknowledged, stored)): {behind}",
    )

    # (4) The restarted old master stayed out of it, and is a replica of the new one.
    unknown = [a for a in answers if a.status == 404]
    assert not unknown, f"{unknown[:3]}\n{timeline}"
    info = failover.old.client().info("replication")
    assert info["role"] == "slave" and int(info["master_port"]) == failover.new_port, info

    # (5) Charts and expiry work on the new master.
    etag = wait_until(
        lambda: (r := service.get("render", jobid=jobid)).status_code == 200 and r.headers["ETag"],
        20,
        what="a chart of the job",
    )
    assert service.get("update", jobid=jobid, workid="after", current=1, total=2).status_code == 202
    png = wait_until(
        lambda: (r := service.get("render", jobid=jobid)).headers.get("ETag") != etag and r,
        20,
        what="a new chart after a new update",
    )
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG"), png.status_code
    expiring = "failover:expiring"
    assert service.get("create", jobid=expiring, maxage=2).status_code == 200
    assert service.get("status", jobid=expiring).status_code == 200
    created = time.monotonic()
    wait_until(
        lambda: service.get("status", jobid=expiring).status_code == 404,
        15,
        what=f"the job with maxage=2 to expire\n{logs(service)}",
    )
    print(
        f"failover: promoted {failover.promoted - failover.killed:.2f} s after the kill, "
        f"first 202 {serving - failover.promoted:.2f} s after the promotion, last 503 "
        f"{window:.2f} s after it; {len(refusals)} refusals of {len(answers)} updates, "
        f"{len(acknowledged)} workers; old master a replica "
        f"{became_replica - restarted:.2f} s after its restart; slowest answer {slowest:.2f} s; "
        f"expired {time.monotonic() - created:.2f} s after create"
    )


def update_answers(url: str, jobid: str) -> int:
    try:
        params = {"jobid": jobid, "workid": "probe", "current": 1, "total": 2}
        return requests.get(f"{url}/progress/update", params=params, timeout=5).status_code
    except requests.RequestException:
        return 0


def kill_master_under(group: SentinelGroup, url: str, jobid: str) -> tuple[Failover, float]:
    """Kill the master while updates stream to `url`; return the failover and how long after
    the promotion the service answered 202 again. Fails if it did not within 5 s."""
    assert requests.get(f"{url}/progress/create", params={"jobid": jobid}, timeout=10).ok
    with UpdateStream(url, jobid, threads=2) as stream:
        wait_until(lambda: len(stream.acknowledged()) >= 5, 20, what="updates before the kill")
        failover = kill_master(group)
        serving = first_202_after(stream, failover.promoted, PROMOTED_TO_SERVING)
        time.sleep(PROMOTED_TO_SERVING + 1)
    answers = stream.snapshot()
    wrong = [a for a in answers if a.status not in (202, 503)]
    assert not wrong, wrong[:5]
    last = last_refusal(answers, failover.killed)
    assert last is None or last.done - failover.promoted < PROMOTED_TO_SERVING, (
        f"{last}\n{answers_by_second(answers, failover.promoted)}"
    )
    return failover, serving - failover.promoted


def answers_by_second(answers: list[Answer], zero: float) -> str:
    """Answers counted per status in each second from `zero`, with the first refusal's body."""
    lines = {}
    for a in answers:
        second = int((a.done - zero) // 1)
        counts, bodies = lines.setdefault(second, ({}, {}))
        counts[a.status] = counts.get(a.status, 0) + 1
        bodies.setdefault(a.status, a.body[-120:])
    return "\n".join(
        f"{second:+3d} s: {counts} { ({k: v for k, v in bodies.items() if k != 202}) }"
        for second, (counts, bodies) in sorted(lines.items())
    )


@pytest.mark.timeout(900)  # includes the clone and `make install` of deployed_clone (~1 min)
def test_master_killed_under_supervisord(deployed_clone, group, tmp_path):
    service = Supervised(
        deployed_clone, group.url, tmp_path, extra_env={"PROGRESS_MIN_REPLICAS": "1"}
    )
    try:
        wait_until(
            lambda: all(service.running(n) for n in NAMES),
            60,
            what=f"all processes RUNNING\n{service.ctl('status')}\n{service.tail()}",
        )
        wait_until(lambda: service.healthz() == 200, 60, what=f"/healthz 200\n{service.tail()}")
        before = {**service.status(), "notify": service.pid("notify")}
        failover, serving = kill_master_under(group, service.url, "failover:supervised")
        after = {**service.status(), "notify": service.pid("notify")}
        exits = [
            line[:300]
            for line in service.log_path.read_text(errors="replace").splitlines()
            if "exited:" in line or "Unrecoverable error" in line
        ]
        assert after == before, f"restarted: {before} -> {after}\n{exits}\n{service.tail()}"
        assert service.healthz() == 200, service.tail()
        print(f"supervisord: 202 again {serving:.2f} s after the promotion; {after}")
    finally:
        service.stop()
        service.kill_leftovers()


# What each Procfile process's command line holds (after bin/in-venv has exec'd the venv's python).
PROCESS_MARKERS = {
    "web": " -m api",
    "ingest": "--queues ingest",
    "render": "--queues render",
    "notify": "--queues notify",
    "beat": "celery_app --quiet beat",
}


def service_processes(root_pid: int) -> dict[str, set[int]]:
    """Each process type's main process(es) under `root_pid`: the venv's python running its
    Procfile line whose parent is not such a python (the pool and server children it forked)."""
    commands = {pid: _cmdline(pid) for pid in children_of(root_pid)}

    def is_service(command: str) -> bool:
        return ".venv/bin/python" in command

    found: dict[str, set[int]] = {name: set() for name in PROCESS_MARKERS}
    for pid, command in commands.items():
        if is_service(command) and not is_service(commands.get(_parent(pid), "")):
            for name, marker in PROCESS_MARKERS.items():
                if marker in command:
                    found[name].add(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except OSError:
        return None


@pytest.mark.timeout(900)  # includes the clone and `make install` of deployed_clone (~1 min)
def test_master_killed_under_make_run(deployed_clone, group, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **_outside_this_checkout(),
        **SETTINGS,
        "REDIS_URL": group.url,
        "PROGRESS_HOST": "127.0.0.1",
    }
    log_path = tmp_path / "make-run.log"
    with open(log_path, "ab") as log:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=deployed_clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped through it below
        )

    def tail() -> str:
        return f"--- make run's log\n{log_path.read_text(errors='replace')[-6000:]}"

    seen: set[int] = set()
    try:
        wait_until(
            lambda: update_answers(url, "none") == 404, 90, what=f"the web to answer\n{tail()}"
        )
        seen |= children_of(make.pid)
        before = service_processes(make.pid)
        assert all(len(pids) == 1 for pids in before.values()), before
        failover, serving = kill_master_under(group, url, "failover:make-run")
        assert make.poll() is None, f"make run exited with {make.returncode}\n{tail()}"
        after = service_processes(make.pid)
        assert after == before, f"processes changed: {before} -> {after}\n{tail()}"
        print(f"make run: 202 again {serving:.2f} s after the promotion")
    finally:
        seen |= children_of(make.pid)
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # as Ctrl-C: honcho stops what it started
            try:
                make.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait(10)
        for pid in alive(seen):
            os.kill(pid, signal.SIGKILL)
