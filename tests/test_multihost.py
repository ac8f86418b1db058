"""The service spread over seven "machines": Redis, web, ingest, render, notify and beat each on
a host of its own, and a client on another, as the README's "Running on several machines"
recipe has it.

The hosts are Linux network namespaces this test creates (tests/netns.py): a bridge in a
namespace of its own, one veth pair per host, a random 10.x.y.0/24 subnet and random names; the
root namespace is not touched, and every host's only route is to that subnet, so all traffic goes
to addresses of the test's own namespaces (never to 127.0.0.1 or a Redis already on the machine).
Everything is deleted at the end, on failure too.

- Redis: `redis-server --port 6379 --bind <its address> --requirepass <random> --dir <tmp>
  --save "" --appendonly yes`, protected mode left on.
- web, ingest, render, notify, beat: each Procfile line of a fresh clone (`deployed_clone`: `git
  clone` and `make install`) run as written, `ip netns exec HOST /bin/sh -c "exec <line>"` in the
  clone, with an environment of REDIS_URL=redis://:<password>@<redis address>:6379/0 (and
  PORT=8000 for web) plus, only to keep the test short, PROGRESS_EXPIRE_EVERY=1,
  PROGRESS_SWEEP_EVERY=1, PROGRESS_REDELIVER_AFTER=5 and PROGRESS_RENDER_INTERVAL=0.5.
- the client: everything it does runs in its namespace: curl for the MWA guide's curl examples
  (copied, only the base URL changed), the clone's Python for its `requests` example, a batch
  and a stream of updates.

Checked through the client: the guide's examples; expiry of a job with a small maxage; a batched
JSON update; no acknowledged update lost when the ingest host's processes are SIGKILLed in the
middle of a stream and started again; /healthz at the end.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tasks.embedded_redis import redis_server_binary
from tests import netns
from tests.harness import procfile

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(netns.available() is not None, reason=netns.available() or ""),
]

# Only to keep the test short: expiry and the lost-work sweep every second, lost work re-sent
# after 5 s, charts re-drawn at most twice a second.
FAST = {
    "PROGRESS_EXPIRE_EVERY": "1",
    "PROGRESS_SWEEP_EVERY": "1",
    "PROGRESS_REDELIVER_AFTER": "5",
    "PROGRESS_RENDER_INTERVAL": "0.5",
}
PORT = 8000
SERVICES = ("web", "ingest", "render", "notify", "beat")
CLIENT_ENV = {"PATH": "/usr/bin:/bin", "LOGNAME": "alice"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Cluster:
    def __init__(self, net: netns.Network, clone: Path, tmp: Path) -> None:
        self.net = net
        self.clone = clone
        self.tmp = tmp
        self.password = secrets.token_hex(16)
        self.hosts = {
            name: net.add_host(name) for name in ("redis", *SERVICES, "client")
        }  # each its own namespace
        self.redis_url = f"redis://:{self.password}@{self.hosts['redis'].addr}:6379/0"
        self.base = f"http://{self.hosts['web'].addr}:{PORT}"
        self.lines = procfile(clone)
        self.procs: dict[str, netns.Process] = {}

    # --- the service's hosts

    def start_redis(self) -> None:
        data = self.tmp / "redis-data"
        data.mkdir()
        command = [
            redis_server_binary(),
            "--port", "6379",
            "--bind", self.hosts["redis"].addr,
            "--requirepass", self.password,
            "--dir", str(data),
            "--save", "",
            "--appendonly", "yes",
        ]  # fmt: skip
        self._start("redis", command, {})
        self.wait(
            lambda: "Ready to accept connections" in self.log("redis"), 20, "redis-server to start"
        )

    def start(self, name: str) -> None:
        env = {"REDIS_URL": self.redis_url, **FAST}
        if name == "web":
            env["PORT"] = str(PORT)
        self._start(name, ["/bin/sh", "-c", f"exec {self.lines[name]}"], env)

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = self.tmp / f"{name}.log"
        with open(log, "a") as f:
            f.write(f"=== started {time.strftime('%H:%M:%S')}\n")
        self.procs[name] = self.net.start(name, self.hosts[name], command, env, self.clone, log)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.net.kill(self.procs.pop(name), sig)

    # --- the client's host

    def client(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.hosts["client"].argv(*argv),
            env=CLIENT_ENV,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def sh(self, script: str, timeout: float = 60) -> str:
        done = self.client("/bin/bash", "-c", script, timeout=timeout)
        assert done.returncode == 0, self.explain(f"client script failed: {done.stderr}")
        return done.stdout

    def curl(self, endpoint: str, *args: str, **params) -> tuple[int, str]:
        """GET BASE/endpoint from the client, parameters URL-encoded by curl: (status, body)."""
        encoded = [a for k, v in params.items() for a in ("--data-urlencode", f"{k}={v}")]
        command = ["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", "-G", *encoded, *args]
        done = self.client(*command, f"{self.base}/{endpoint}")
        if done.returncode != 0:
            return 0, done.stderr
        body, _, code = done.stdout.rpartition("\n")
        return int(code), body

    def status(self, jobid: str) -> dict | None:
        # One page of up to 10,000 workers (the most the service lists at once) holds them all.
        code, body = self.curl("progress/status", jobid=jobid, workers="all", limit=10000)
        return json.loads(body) if code == 200 else None

    def python(self, script: str, *args: str, timeout: float = 60) -> str:
        path = self.tmp / f"client-{uuid.uuid4().hex[:8]}.py"
        path.write_text(script)
        python = str(self.clone / ".venv" / "bin" / "python")
        done = self.client(python, str(path), *args, timeout=timeout)
        assert done.returncode == 0, self.explain(f"client python failed: {done.stderr}")
        return done.stdout

    # --- waiting and explaining

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def explain(self, message: str, tail: int = 2500) -> str:
        logs = "\n".join(
            f"--- {name}.log (tail)\n{self.log(name)[-tail:]}"
            for name in ("redis", *SERVICES, "stream")
        )
        return f"{message}\n{logs}"

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.25):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    self.explain(f"timed out after {timeout} s waiting for {what}")
                )
            time.sleep(interval)

    def healthz(self) -> tuple[int, str]:
        return self.curl("healthz")


@pytest.fixture(scope="module")
def cluster(deployed_clone, tmp_path_factory):
    net = netns.Network()
    # A SIGTERM (a CI job's timeout) unwinds like Ctrl-C, so the namespaces are deleted then too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cluster = Cluster(net, deployed_clone, tmp_path_factory.mktemp("multihost"))
        for host in cluster.hosts.values():
            routes = net.routes(host)
            assert routes and all(r.startswith(str(net.subnet)) for r in routes), routes
        cluster.start_redis()
        for name in SERVICES:
            cluster.start(name)
        cluster.wait(lambda: cluster.healthz()[0] == 200, 180, "/healthz to answer 200")
        yield cluster
    finally:
        net.destroy()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def test_the_guide_examples_from_another_host(cluster):
    base = cluster.base
    # The guide's shell recipe and its update URLs, only the base URL changed.
    out = cluster.sh(
        f"""
        JOBID=${{LOGNAME}}:`date -Ins`
        curl "{base}/progress/create?jobid=${{JOBID}}&desc=My+Job"
        echo
        echo "View progress of this job at {base}/progress/show?jobid=${{JOBID}}"
        curl "{base}/progress/update?jobid=${{JOBID}}&workid=1&current=5&total=22"
        echo
        curl "{base}/progress/update?jobid=${{JOBID}}&workid=2&current=10&total=22"
        echo
        curl "{base}/progress/update?jobid=${{JOBID}}&workid=3&current=21&total=22"
        echo
        echo "JOBID=$JOBID"
        """
    )
    lines = out.strip().splitlines()
    raw_id = lines[-1].removeprefix("JOBID=")
    jobid = raw_id.replace("+", " ")  # typed raw into a URL, "+" is a space (as in a browser)
    assert raw_id.startswith("alice:"), out
    created = json.loads(lines[0])
    assert created["jobid"] == jobid and created["desc"] == "My Job", out
    assert lines[1] == f"View progress of this job at {base}/progress/show?jobid={raw_id}"
    assert [json.loads(line) for line in lines[2:5]] == [{"accepted": True}] * 3, out

    def three_workers():
        doc = cluster.status(jobid)
        return doc if doc and len(doc["workers"]) == 3 else None

    doc = cluster.wait(three_workers, 30, "the guide's three updates")
    assert doc["desc"] == "My Job"
    assert [(w["workid"], w["current"], w["total"]) for w in doc["workers"]] == [
        ("1", 5, 22),
        ("2", 10, 22),
        ("3", 21, 22),
    ]

    # show: the live page; render: a PNG.
    code, page = cluster.curl("progress/show", jobid=jobid)
    assert code == 200 and "<html" in page.lower(), cluster.explain(f"show: {code} {page[:300]}")
    png = cluster.tmp / "guide.png"
    done = cluster.client(
        "curl", "-sS", "-o", str(png), "-w", "%{http_code} %{content_type}",
        f"{base}/progress/render?jobid={raw_id}",
    )  # fmt: skip
    assert done.stdout == "200 image/png", cluster.explain(f"render: {done.stdout} {done.stderr}")
    assert png.read_bytes().startswith(PNG_MAGIC)

    # The guide's --data-urlencode form, as written.
    out = cluster.sh(
        f"""
        JOBID=${{LOGNAME}}:`date -Ins`
        curl -G --data-urlencode jobid="${{JOBID}}" --data-urlencode desc="This is my job" {base}/progress/create
        echo
        echo "JOBID=$JOBID"
        """  # noqa: E501 - the guide's line
    )
    lines = out.strip().splitlines()
    jobid = lines[-1].removeprefix("JOBID=")
    assert json.loads(lines[0])["desc"] == "This is my job", out
    assert cluster.status(jobid)["desc"] == "This is my job"

    # The guide's Python example, with the clone's Python and requests.
    jobid = f"py:{uuid.uuid4().hex[:8]}"
    out = cluster.python(
        f"""
import sys
import requests
r = requests.get('{base}/progress/create', params={{'jobid': sys.argv[1], 'desc': 'Testing'}})
print(r.status_code)
r = requests.get('{base}/progress/update', params={{'jobid':sys.argv[1], 'workid':'flagger1', 'current':7, 'total':50, 'desc':'lots of RFI'}})
print(r.status_code, r.json())
""",  # noqa: E501 - the guide's line
        jobid,
    )
    assert out.split("\n")[:2] == ["200", "202 {'accepted': True}"], out

    def flagger():
        doc = cluster.status(jobid)
        return doc and doc["workers"] and doc["workers"][0]

    worker = cluster.wait(flagger, 30, "the Python example's update")
    assert (worker["workid"], worker["current"], worker["total"], worker["desc"]) == (
        "flagger1",
        7,
        50,
        "lots of RFI",
    )


def test_a_job_with_a_small_maxage_expires(cluster):
    jobid = f"short:{uuid.uuid4().hex[:8]}"
    code, body = cluster.curl("progress/create", jobid=jobid, desc="short-lived", maxage=4)
    assert code == 200, cluster.explain(f"create: {code} {body}")
    assert json.loads(body)["maxage"] == 4
    code, body = cluster.curl("progress/update", jobid=jobid, workid="w", current=1, total=2)
    assert code in (202, 404), body  # 404 only if it has expired already
    cluster.wait(
        lambda: cluster.curl("progress/status", jobid=jobid)[0] == 404, 30, "the job to expire"
    )
    assert cluster.curl("progress/render", jobid=jobid)[0] == 404


BATCH = """
import json
import sys
import requests
base, jobid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
requests.get(base + "/progress/create", params={"jobid": jobid, "desc": "batch"}).raise_for_status()
updates = [
    {"jobid": jobid, "workid": f"b{i}", "current": i, "total": n, "desc": f"item {i}"}
    for i in range(n)
]
updates[3]["ok"] = 0
r = requests.post(base + "/progress/update", json=updates, timeout=30)
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


def test_a_batch_of_updates_in_one_post(cluster):
    jobid = f"batch:{uuid.uuid4().hex[:8]}"
    n = 500
    answer = json.loads(cluster.python(BATCH, cluster.base, jobid, str(n)))
    assert answer == {"status": 202, "body": {"accepted": n}}, answer

    def all_applied():
        doc = cluster.status(jobid)
        return doc if doc and len(doc["workers"]) == n else None

    doc = cluster.wait(all_applied, 30, f"{n} batched updates")
    workers = {w["workid"]: w for w in doc["workers"]}
    assert set(workers) == {f"b{i}" for i in range(n)}
    assert all(workers[f"b{i}"]["current"] == i for i in range(n))
    assert workers["b7"]["desc"] == "item 7"
    assert workers["b3"]["ok"] is False and doc["counts"]["failed"] == 1, workers["b3"]


STREAM = """
import json
import os
import sys
import threading
import time
import requests
base, jobid, acks, stop_file, seconds = sys.argv[1:6]
deadline = time.monotonic() + float(seconds)
lock = threading.Lock()
counts = {"acknowledged": 0, "failed": 0}
out = open(acks, "a", buffering=1)

def send(prefix):
    n = 0
    with requests.Session() as session:
        while time.monotonic() < deadline and not os.path.exists(stop_file):
            n += 1
            workid = f"{prefix}-{n}"
            params = {"jobid": jobid, "workid": workid, "current": n, "total": 10**6}
            try:
                resp = session.get(base + "/progress/update", params=params, timeout=5)
                ok = 200 <= resp.status_code < 300
            except requests.RequestException:
                ok = False
            with lock:
                counts["acknowledged" if ok else "failed"] += 1
                if ok:
                    out.write(workid + "\\n")
            if not ok:
                time.sleep(0.05)

threads = [threading.Thread(target=send, args=(f"t{i}",)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.close()
print(json.dumps(counts))
"""


def test_ingest_host_killed_mid_stream_loses_no_acknowledged_update(cluster):
    jobid = f"stream:{uuid.uuid4().hex[:8]}"
    code, body = cluster.curl("progress/create", jobid=jobid, desc="stream")
    assert code == 200, cluster.explain(f"create: {code} {body}")
    acks = cluster.tmp / "stream-acks.txt"
    stop_file = cluster.tmp / "stream-stop"
    script = cluster.tmp / "stream.py"
    script.write_text(STREAM)
    python = str(cluster.clone / ".venv" / "bin" / "python")
    stream = cluster.net.start(
        "stream",
        cluster.hosts["client"],
        [python, str(script), cluster.base, jobid, str(acks), str(stop_file), "60"],
        CLIENT_ENV,
        cluster.tmp,
        cluster.tmp / "stream.log",
    )

    def acknowledged() -> list[str]:
        return acks.read_text().split() if acks.exists() else []

    try:
        cluster.wait(lambda: len(acknowledged()) >= 50, 30, "the stream to get going")
        cluster.kill("ingest", signal.SIGKILL)  # the ingest host's whole process group
        at_kill = len(acknowledged())
        time.sleep(2)
        during_outage = len(acknowledged()) - at_kill  # accepted while no ingest process ran
        cluster.start("ingest")
        cluster.wait(
            lambda: len(acknowledged()) >= at_kill + 100, 30, "more updates after the restart"
        )
        time.sleep(2)
        stop_file.touch()
        stream.popen.wait(30)
    finally:
        cluster.net.kill(stream)
    counts = json.loads(cluster.log("stream").strip().splitlines()[-1])
    acked = set(acknowledged())
    assert len(acked) == counts["acknowledged"] > 150, counts
    assert during_outage > 0, cluster.explain("no update was accepted while ingest was down")

    def missing() -> set[str]:
        doc = cluster.status(jobid)
        return acked - {w["workid"] for w in doc["workers"]} if doc else acked

    cluster.wait(
        lambda: not missing(), 60, f"all {len(acked)} acknowledged updates in the job's status"
    )


def test_healthz_at_the_end(cluster):
    code, body = cluster.wait(
        lambda: (h := cluster.healthz())[0] == 200 and h, 30, "/healthz to answer 200"
    )
    doc = json.loads(body)
    assert doc["status"] == "ok" and doc["missing"] == [], doc
