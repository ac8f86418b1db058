"""The hostile clients of the fairness section (bench/fairness.py), each run in a process of its
own (so its threads and sockets never share a GIL or a descriptor table with the well-behaved
client) and each from ATTACKER, a loopback address other than the good client's.

Every abuse is bounded in time (it runs until told to stop) and in count. A refusal (4xx, 429,
503) is counted, never raised: the service's own limits may refuse an abuse, and that is what a
fix looks like from the attacker's side."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import resource
import select
import socket
import threading
import time
from collections import Counter
from urllib.parse import urlencode

ATTACKER = "127.0.0.2"
ID_LENGTH = 256  # PROGRESS_MAX_ID_LENGTH's default: the longest id a worker may have
HUGE_WORKERS = 100_000  # PROGRESS_MAX_WORKERS_PER_JOB's default
HUGE_BATCH = 2_600  # updates per POST: about 0.8 MB, under the 1 MiB body limit (39 POSTs)
READ_WORKERS = 10_000  # the status readers' job: one full page at the largest limit
READ_CLIENTS = 12
READ_LIMITS = (10_000, 5_000, 2_000, 1_000, 500, 200, 100)  # the largest the service takes
IDLE_SOCKETS = 3_000
SLOW_SOCKETS = 50  # of them, these send a request's head one header every SLOW_EVERY seconds
SLOW_EVERY = 5.0
REFUSALS_TO_GIVE_UP = 5  # consecutive refusals that end a build: a limit holds


class Client:
    """Keep-alive HTTP/1.1 from `source`; a dropped connection is opened again."""

    def __init__(self, host: str, port: int, source: str = ATTACKER, timeout: float = 30):
        self.address, self.source, self.timeout = (host, port), source, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """(status, body); status 0 and the error's name when no answer came."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                *self.address, timeout=self.timeout, source_address=(self.source, 0)
            )
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, data
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return 0, type(exc).__name__.encode()

    def get(self, endpoint: str, **params):
        return self.request("GET", f"/progress/{endpoint}?{urlencode(params)}")

    def post_json(self, rows: list[dict]):
        body = json.dumps(rows, separators=(",", ":")).encode()
        return self.request("POST", "/progress/update", body, {"Content-Type": "application/json"})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def long_id(i: int) -> str:
    return f"w{i:0{ID_LENGTH - 1}d}"


def worker_rows(jobid: str, ids, current: int = 1) -> list[dict]:
    return [{"jobid": jobid, "workid": w, "current": current, "total": 100} for w in ids]


def post_all(host, port, batches: list[list[dict]], stop, threads: int = 2) -> dict:
    """POST the batches (2 connections): a 413 splits a batch in two, a 503 is retried after
    1 s (twice), any other refusal is counted; REFUSALS_TO_GIVE_UP refusals in a row end
    it. Returns what was accepted and refused, by status."""
    todo, lock = list(reversed(batches)), threading.Lock()
    out = {"accepted": 0, "posts": 0, "statuses": Counter(), "gave_up": False}

    def run() -> None:
        client, in_a_row = Client(host, port), 0
        while not stop.is_set():
            with lock:
                if not todo or out["gave_up"]:
                    break
                batch = todo.pop()
            for attempt in range(3):
                status, body = client.post_json(batch)
                if status != 503 or attempt == 2:
                    break
                time.sleep(1)
            with lock:
                out["posts"] += 1
                out["statuses"][str(status)] += 1
                if 200 <= status < 300:
                    out["accepted"] += len(batch)
                    in_a_row = 0
                elif status == 413 and len(batch) > 100:
                    half = len(batch) // 2
                    todo.extend([batch[half:], batch[:half]])
                else:
                    in_a_row += 1
                    out["gave_up"] = out["gave_up"] or in_a_row >= REFUSALS_TO_GIVE_UP
        client.close()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out


def wait_reported(client: Client, jobid: str, workers: int, stop, timeout: float) -> int:
    """Poll the job's status until it counts `workers` (or time runs out); the count seen."""
    deadline, seen = time.monotonic() + timeout, -1
    while time.monotonic() < deadline and not stop.is_set():
        status, body = client.get("status", jobid=jobid, workers="none")
        if status == 200:
            seen = json.loads(body)["workers_reported"]
            if seen >= workers:
                break
        time.sleep(0.5)
    return seen


# -- the abuses -------------------------------------------------------------------------------
# fn(host, port, ready, settled, stop, out): sets ready once the good client may start, settled
# once the abuse is at full force, runs until stop, and fills `out`.


def huge_job(host, port, ready, settled, stop, out) -> None:
    """(a) A job of 100,000 workers with 256-character ids, built in POSTed batches, then an
    update to it every 0.3 s so that it is rendered again every render interval."""
    ready.set()  # its build is part of the abuse
    client, jobid = Client(host, port), "huge"
    status, _ = client.get("create", jobid=jobid, desc="one huge job")
    out["create"] = status
    ids = [long_id(i) for i in range(HUGE_WORKERS)]
    rows = worker_rows(jobid, ids)
    batches = [rows[i : i + HUGE_BATCH] for i in range(0, len(rows), HUGE_BATCH)]
    t0 = time.monotonic()
    out["build"] = post_all(host, port, batches, stop)
    out["build_s"] = time.monotonic() - t0
    settled.set()
    rng, updates, statuses = random.Random(3), 0, Counter()
    while not stop.is_set():
        status, _ = client.get(
            "update", jobid=jobid, workid=rng.choice(ids), current=rng.randint(0, 100), total=100
        )
        updates += 1
        statuses[str(status)] += 1
        stop.wait(0.3)
    out["rerender_updates"], out["rerender_statuses"] = updates, statuses
    client.close()


def status_readers(host, port, ready, settled, stop, out) -> None:
    """(b) Twelve clients looping on one page of all workers of a 10,000-worker job, at the
    largest page the service allows."""
    client, jobid = Client(host, port), "readbig"
    out["create"] = client.get("create", jobid=jobid, desc="read me")[0]
    rows = worker_rows(jobid, (f"worker-{i:05d}" for i in range(READ_WORKERS)))
    out["build"] = post_all(
        host, port, [rows[i : i + 5000] for i in range(0, len(rows), 5000)], stop
    )
    accepted = out["build"]["accepted"]  # a limit may have refused some
    out["reported"] = wait_reported(client, jobid, accepted, stop, timeout=60) if accepted else 0
    out["limit"] = limit = next(
        (
            n
            for n in READ_LIMITS
            if client.get("status", jobid=jobid, workers="all", limit=n)[0] == 200
        ),
        None,
    )
    client.close()
    path = (
        f"/progress/status?{urlencode({'jobid': jobid, 'workers': 'all', 'limit': limit or 100})}"
    )
    reads, lock = Counter(), threading.Lock()
    size = Counter()

    def loop() -> None:
        reader = Client(host, port)
        while not stop.is_set():
            status, body = reader.request("GET", path)
            with lock:
                reads[str(status)] += 1
                size["bytes"] += len(body)
            if status != 200:
                time.sleep(0.01)  # a refusal: try again at once, as a careless loop would
        reader.close()

    pool = [threading.Thread(target=loop) for _ in range(READ_CLIENTS)]
    ready.set()
    settled.set()
    t0 = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out["reads"], out["bytes"], out["read_s"] = reads, size["bytes"], time.monotonic() - t0


def _open(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((ATTACKER, 0))
    s.setblocking(False)
    s.connect_ex((host, port))
    return s


def _connected(socks: list[socket.socket], timeout: float) -> int:
    """Wait until every socket's connect finished (or time ran out); how many succeeded."""
    pending, ok = {s.fileno(): s for s in socks}, 0
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            s = pending.pop(fd)
            poller.unregister(fd)
            ok += s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return ok


def idle_sockets(host, port, ready, settled, stop, out) -> None:
    """(c) 3,000 connections that send nothing, of which 50 send a request's head slowly (one
    header line every 5 s, never the blank line that ends it). A socket the server closes is
    opened again, at most 3,000 times in all."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_SOCKETS + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    socks = [_open(host, port) for _ in range(IDLE_SOCKETS)]
    out["connected"] = _connected(socks, timeout=10)
    slow = set(range(SLOW_SOCKETS))
    head = f"GET /progress/status?jobid=slow HTTP/1.1\r\nHost: {host}\r\n".encode()
    for i in slow:
        try:
            socks[i].send(head)
        except OSError:
            pass
    ready.set()
    settled.set()
    reopened, budget, sent = 0, IDLE_SOCKETS, 0
    last_trickle = time.monotonic()
    poller, index = select.poll(), {}  # poll, not select: descriptors run past FD_SETSIZE
    for i, s in enumerate(socks):
        poller.register(s, select.POLLIN)
        index[s.fileno()] = i
    while not stop.wait(1.0):
        for fd, _ in poller.poll(0):
            i = index.pop(fd)
            poller.unregister(fd)
            try:
                gone = socks[i].recv(4096) == b""
            except OSError:
                gone = True
            if not gone:  # an answer (say, 408): the server will close it next
                poller.register(fd, select.POLLIN)
                index[fd] = i
                continue
            socks[i].close()
            if reopened >= budget:
                continue
            socks[i] = _open(host, port)
            reopened += 1
            poller.register(socks[i], select.POLLIN)
            index[socks[i].fileno()] = i
            if i in slow and _connected([socks[i]], 1):
                try:
                    socks[i].send(head)
                except OSError:
                    pass
        if time.monotonic() - last_trickle >= SLOW_EVERY:
            last_trickle = time.monotonic()
            for i in slow:
                try:
                    socks[i].send(f"X-Slow-{sent}: 1\r\n".encode())
                except OSError:
                    pass
            sent += 1
    out["reopened"], out["slow_lines"] = reopened, sent
    for s in socks:
        s.close()


ABUSES = {"huge_job": huge_job, "status_readers": status_readers, "idle_sockets": idle_sockets}


def _child(name: str, host: str, port: int, ready, settled, stop, results) -> None:
    out: dict = {}
    try:
        ABUSES[name](host, port, ready, settled, stop, out)
    except Exception as exc:  # reported to the bench, which prints it in its notes
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        ready.set()
        settled.set()
        results.put(out)


class Attack:
    """One abuse in a child process: start(), wait on ready and settled, then stop() for what
    it did."""

    def __init__(self, name: str, host: str, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.settled, self.stop_event = ctx.Event(), ctx.Event(), ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(
            target=_child,
            args=(name, host, port, self.ready, self.settled, self.stop_event, self.results),
            daemon=True,
        )

    def start(self) -> Attack:
        self.proc.start()
        return self

    def stop(self, timeout: float = 60) -> dict:
        self.stop_event.set()
        try:
            out = self.results.get(timeout=timeout)
        except Exception:  # queue.Empty: the child hung; ended below by its PID
            out = {"error": f"no result within {timeout:.0f} s"}
        self.proc.join(10)
        if self.proc.is_alive():
            os.kill(self.proc.pid, 9)
            self.proc.join(5)
        return out
