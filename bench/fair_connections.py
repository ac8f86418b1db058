"""`python -m bench.fair_connections`: a well-behaved client's updates (127.0.0.1, a new
connection each, as curl and the MWA scripts make them) while another address (127.0.0.2)
abuses the web tier, with the protection switched off and at the defaults, in one run:

- reads: 12 clients loop on the biggest status page (a 10,000-worker job, limit=10000);
  off = PROGRESS_WEB_STATUS_ROWS_PER_SECOND=0.
- sockets: idle connections past what the web processes hold together at the defaults
  (5,000), and 200 that sent half a request; off = the settings before issue 18 (1,000
  connections per process, no limit per address, a header timeout longer than the run).

Starts its own Redis and web + ingest processes (tests/harness.py); stops them by PID."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import resource
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from tasks.settings import Settings
from tests.harness import RedisServer, Service, wait_until

GOOD, ABUSER = "127.0.0.1", "127.0.0.2"
READERS, BIG_JOB_WORKERS = 12, 10_000
DEFAULTS = Settings()
IDLE = max(3000, DEFAULTS.web_processes * DEFAULTS.web_connection_limit + 1000)
HALF_SENT = 200
HALF_REQUEST = b"POST /progress/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 90\r\n"
UPDATES = 100
TIMEOUT = 20.0


def request(port: int, path: str, source: str = GOOD, body: bytes | None = None) -> int:
    """One request on a new connection from `source`; its status."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=TIMEOUT, source_address=(source, 0)
    )
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request("POST" if body else "GET", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def well_behaved_updates(port: int, jobid: str) -> dict:
    """UPDATES updates, 20 ms apart, each on a new connection: latency figures in ms."""
    latencies, failures = [], 0
    for i in range(UPDATES):
        query = urlencode({"jobid": jobid, "workid": f"good{i}", "current": 1, "total": 2})
        started = time.monotonic()
        try:
            ok = request(port, f"/progress/update?{query}") == 202
        except OSError:
            ok = False
        latencies.append(time.monotonic() - started)
        failures += not ok
        time.sleep(0.02)
    ordered = sorted(latencies)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "failed": failures,
    }


def start(redis: RedisServer, workdir: Path, env: dict[str, str]) -> Service:
    return Service(redis.url, workdir, {"PROGRESS_CREATE_RATE_LIMIT": "0", **env}).start(
        "web", "ingest"
    )


def build_big_job(service: Service, jobid: str) -> None:
    assert request(service.port, f"/progress/create?{urlencode({'jobid': jobid})}") == 200
    for start_at in range(0, BIG_JOB_WORKERS, 1000):
        batch = [
            {"jobid": jobid, "workid": f"w{i}", "current": i % 100, "total": 100}
            for i in range(start_at, start_at + 1000)
        ]
        assert request(service.port, "/progress/update", body=json.dumps(batch).encode()) == 202

    def applied() -> bool:
        query = urlencode({"jobid": jobid, "workers": "none"})
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=TIMEOUT)
        conn.request("GET", f"/progress/status?{query}")
        reported = json.loads(conn.getresponse().read())["workers_reported"]
        conn.close()
        return reported >= BIG_JOB_WORKERS

    wait_until(applied, 120, interval=0.5, what="the big job to be applied")


def reads_phase(port: int, big: str, small: str) -> dict:
    """The well-behaved client's updates while READERS clients loop on the biggest page."""
    stop = threading.Event()
    answers: dict[int, int] = {}
    lock = threading.Lock()
    path = "/progress/status?" + urlencode({"jobid": big, "workers": "all", "limit": 10000})

    def loop() -> None:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=TIMEOUT, source_address=(ABUSER, 0)
        )
        while not stop.is_set():
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except OSError:
                status = 0
                conn.close()
            with lock:
                answers[status] = answers.get(status, 0) + 1
            if status == 429:
                time.sleep(0.05)  # an impatient client: retries long before Retry-After

    readers = [threading.Thread(target=loop, daemon=True) for _ in range(READERS)]
    for t in readers:
        t.start()
    time.sleep(2)  # the readers are in full swing
    try:
        return {**well_behaved_updates(port, small), "readers' answers": dict(answers)}
    finally:
        stop.set()
        for t in readers:
            t.join(TIMEOUT)


def sockets_phase(port: int, jobid: str) -> dict:
    """The well-behaved client's updates while ABUSER holds IDLE idle and HALF_SENT half-sent
    connections (made without waiting for the handshake, as a flood would)."""
    import socket

    held: list[socket.socket] = []
    try:
        for k in range(IDLE + HALF_SENT):
            sock = socket.socket()
            sock.bind((ABUSER, 0))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            if k >= IDLE:
                with contextlib.suppress(OSError):
                    sock.send(HALF_REQUEST)
            held.append(sock)
        time.sleep(1)
        return well_behaved_updates(port, jobid)
    finally:
        for sock in held:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["reads", "sockets"])
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = Path(tempfile.mkdtemp(prefix="fair-connections-"))
    redis = RedisServer(workdir / "redis").start()
    big, small = f"big-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
    variants = {
        "reads": {
            "off": {"PROGRESS_WEB_STATUS_ROWS_PER_SECOND": "0"},
            "defaults": {},
        },
        "sockets": {
            "off": {
                "PROGRESS_WEB_CONNECTION_LIMIT": "1000",
                "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS": "0",
                "PROGRESS_WEB_HEADER_TIMEOUT": "3600",
            },
            "defaults": {},
        },
    }
    results = []
    try:
        for section, by_variant in variants.items():
            if args.only and section != args.only:
                continue
            for variant, env in by_variant.items():
                service = start(redis, workdir / f"{section}-{variant}", env)
                try:
                    if not results:  # the first service builds the jobs; Redis keeps them
                        build_big_job(service, big)
                        assert request(service.port, f"/progress/create?jobid={small}") == 200
                    quiet = well_behaved_updates(service.port, small)
                    if section == "reads":
                        loaded = reads_phase(service.port, big, small)
                    else:
                        loaded = sockets_phase(service.port, small)
                finally:
                    service.stop()
                results.append((section, variant, quiet, loaded))
                print(f"{section:8} {variant:9} quiet {quiet}\n{'':18} abused {loaded}", flush=True)
    finally:
        redis.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
