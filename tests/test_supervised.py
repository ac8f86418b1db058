"""The service under deploy/supervisord.conf, from a fresh clone of the committed tree: each of
web, ingest, render and beat is killed with SIGKILL while updates stream in, supervisord starts it
again, and no acknowledged update is lost. Stopping supervisord leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tasks.store import Store
from tests.harness import RedisServer, free_port, wait_until
from tests.test_faults import UpdateStream

pytestmark = pytest.mark.slow

NAMES = ("web", "ingest", "render", "beat")


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                parents[int(entry)] = int(stat[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _stat(pid: int) -> list[str] | None:
    """(state, ppid) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[:2]


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie waiting to be reaped counts as gone)."""
    return {pid for pid in pids if (stat := _stat(pid)) and stat[0] not in ("Z", "X")}


class Supervised:
    """supervisord started from the clone's deploy/supervisord.conf, with an environment of
    nothing but REDIS_URL, PORT, PATH and a few PROGRESS_* settings (shorter intervals)."""

    def __init__(
        self, clone: Path, redis_url: str, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.clone = clone
        self.conf = clone / "deploy" / "supervisord.conf"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "PATH": "/usr/bin:/bin",
            "PROGRESS_HOST": "127.0.0.1",
            "PROGRESS_SWEEP_EVERY": "1",
            "PROGRESS_REDELIVER_AFTER": "5",
            "PROGRESS_RENDER_INTERVAL": "0.5",
            **(extra_env or {}),
        }
        self.log_path = workdir / "supervisord.log"
        # Appending, as the processes' lines reach this file through other file descriptions
        # (supervisord opens /dev/stdout for them) than supervisord's own stdout.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(clone / ".venv" / "bin" / "supervisord"), "-c", str(self.conf)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.seen: set[int] = set()  # every process of the service ever seen, killed ones' too

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.clone / ".venv" / "bin" / "supervisorctl"), "-c", str(self.conf), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return result.stdout + result.stderr

    def status(self) -> dict[str, tuple[str, int | None]]:
        """NAME -> (state, pid if running), from `supervisorctl status`."""
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in NAMES:
                pid = int(parts[3].rstrip(",")) if parts[1] == "RUNNING" else None
                states[parts[0]] = (parts[1], pid)
        return states

    def pid(self, name: str) -> int:
        out = self.ctl("pid", name).strip()
        assert out.isdigit() and int(out) > 0, f"supervisorctl pid {name}: {out!r}\n{self.tail()}"
        return int(out)

    def running(self, name: str, other_than: int | None = None) -> int | None:
        state, pid = self.status().get(name, ("?", None))
        return pid if state == "RUNNING" and pid != other_than else None

    def remember_processes(self) -> set[int]:
        self.seen |= children_of(self.proc.pid)
        return self.seen

    def tail(self, chars: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"--- supervisord log (last {chars} characters)\n{text[-chars:]}"

    def healthz(self) -> int:
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code
        except requests.RequestException:
            return 0

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM to supervisord, as an operator stops it, and wait. Returns its exit status,
        None if it did not exit within `timeout` and had to be killed."""
        if self.proc.poll() is None:
            self.remember_processes()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        return self.proc.returncode

    def kill_leftovers(self) -> None:
        for pid in alive(self.seen):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def supervised(deployed_clone, tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    service = None
    try:
        store = Store(redis_server.client())
        service = Supervised(deployed_clone, redis_server.url, tmp_path)
        service.store = store
        yield service
    finally:
        if service is not None:
            service.stop()
            service.kill_leftovers()  # only after a failure: the test checks there are none
        redis_server.stop()


def stored_workers(store: Store, jobid: str) -> set[str]:
    snapshot = store.snapshot(jobid)
    return {w.workid for w in snapshot.workers} if snapshot else set()


@pytest.mark.timeout(900)  # includes the clone and `make install` of deployed_clone (~1 min)
def test_supervisord_restarts_every_killed_process_and_nothing_is_lost(supervised):
    service = supervised
    wait_until(
        lambda: all(service.running(n) for n in NAMES),
        60,
        what=f"all four processes RUNNING\n{service.ctl('status')}\n{service.tail()}",
    )
    wait_until(lambda: service.healthz() == 200, 60, what=f"/healthz 200\n{service.tail()}")

    jobid = "supervised:stream"
    assert requests.get(f"{service.url}/progress/create", params={"jobid": jobid}).ok
    orphans: dict[str, set[int]] = {}
    restarts: dict[str, tuple[int, int]] = {}
    with UpdateStream(SimpleNamespace(url=service.url), jobid) as stream:
        time.sleep(1.5)
        for name in NAMES:
            old = service.pid(name)
            service.remember_processes()
            orphans[name] = children_of(old)
            os.kill(old, signal.SIGKILL)
            new = wait_until(
                lambda name=name, old=old: service.running(name, other_than=old),
                60,
                interval=0.3,
                what=f"{name} RUNNING again with a new PID (killed {old})\n"
                f"{service.ctl('status')}\n{service.tail()}",
            )
            restarts[name] = (old, new)
            service.remember_processes()
            time.sleep(1.5)
        wait_until(lambda: service.healthz() == 200, 60, what=f"/healthz 200\n{service.tail()}")
        time.sleep(1)

    assert len(stream.acknowledged) > 50, (stream.failed_requests, service.tail())
    acknowledged = stream.acknowledged
    wait_until(
        lambda: acknowledged <= stored_workers(service.store, jobid),
        60,
        what=f"all {len(acknowledged)} acknowledged updates to be applied (missing: "
        f"{len(acknowledged - stored_workers(service.store, jobid))})\n{service.tail()}",
    )

    # A new update after all the restarts: applied, and drawn on a fresh chart.
    resp = requests.get(
        f"{service.url}/progress/update",
        params={"jobid": jobid, "workid": "after-restarts", "current": 1, "total": 2},
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    wait_until(
        lambda: "after-restarts" in stored_workers(service.store, jobid),
        30,
        what=f"the update sent after the restarts to be applied\n{service.tail()}",
    )

    def chart_is_current():
        snapshot = service.store.snapshot(jobid)
        chart = service.store.chart(jobid, with_png=False)
        return chart and chart.etag.split("-")[1] == str(snapshot.version) and chart.etag

    etag = wait_until(chart_is_current, 30, what=f"a chart of the last version\n{service.tail()}")
    png = requests.get(f"{service.url}/progress/render", params={"jobid": jobid}, timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG"), png.status_code
    assert etag in png.headers["ETag"], (png.headers["ETag"], etag)
    assert service.healthz() == 200, service.tail()

    # What a killed process had forked is gone too (web's servers exit once orphaned).
    leftover = {name: alive(pids) for name, pids in orphans.items() if alive(pids)}
    assert not leftover, f"children of killed processes still running: {leftover}\n{service.tail()}"

    # SIGTERM stops supervisord and every process it started, children included.
    processes = service.remember_processes()
    assert len(processes) >= 4 * 2, processes
    assert service.stop() == 0, service.tail()
    assert not alive(processes), f"still running after supervisord stopped: {alive(processes)}"
    assert "supervisord.pid" not in os.listdir(service.conf.parent), service.tail()
    assert "supervisor.sock" not in os.listdir(service.conf.parent), service.tail()
    print(f"restarts (old PID, new PID): {restarts}; {len(acknowledged)} updates acknowledged")
