"""The service side of the accounting: create jobs, send updates outside wrk, and watch Redis
until what was accepted has been applied (and charts drawn)."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from tasks.store import RENDER_DUE, Store, job_tag


def meta_key(jobid: str) -> str:
    return f"progress:{{{job_tag(jobid)}}}:meta"


def workers_key(jobid: str) -> str:
    return f"progress:{{{job_tag(jobid)}}}:workers"


def chart_key(jobid: str) -> str:
    return f"progress:{{{job_tag(jobid)}}}:chart"


def create_jobs(service, jobids: list[str], threads: int = 4) -> None:
    """Create (or re-create) jobs; each create waits for the job's first chart."""

    def create(jobid: str) -> None:
        response = service.get("create", jobid=jobid, desc=f"bench job {jobid}")
        response.raise_for_status()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, jobids))


def processed(store: Store, jobids: list[str]) -> int:
    """Update rows ingest has processed for these jobs (meta field `updates`)."""
    with store.redis.pipeline(transaction=False) as pipe:
        for jobid in jobids:
            pipe.hget(meta_key(jobid), "updates")
        return sum(int(v or 0) for v in pipe.execute())


@dataclass(frozen=True)
class Applied:
    processed: int  # rows processed since the baseline
    at: float | None  # monotonic time the last of them was seen applied; None: timed out


def wait_applied(
    store: Store, jobids: list[str], baseline: int, accepted: int, timeout: float = 90.0
) -> Applied:
    """Poll until nothing is pending and `accepted` rows were processed, or until nothing is
    pending and the count has stopped growing for 2 s (lost updates)."""
    deadline = time.monotonic() + timeout
    last, changed_at = -1, time.monotonic()
    while True:
        pending = store.pending_updates()
        count = processed(store, jobids) - baseline
        now = time.monotonic()
        if count != last:
            last, changed_at = count, now
        if pending == 0 and count >= accepted:
            return Applied(count, now)
        if pending == 0 and now - changed_at > 2.0:
            return Applied(count, changed_at)
        if now > deadline:
            return Applied(count, None)
        time.sleep(0.02)


STATS = "progress:stats"  # the service's counters (tasks.store.STATS), if this version keeps them


def stats(store: Store) -> dict[str, float]:
    counters = {}
    for key, value in store.redis.hgetall(STATS).items():
        try:
            counters[key.decode()] = float(value)
        except ValueError:
            pass
    return counters


def activity(before: dict[str, float], after: dict[str, float], updates: int) -> str:
    """What ingest and render did between two stats() readings: batches applied (and their mean
    size), renders (and their mean duration)."""
    parts = []
    batches = after.get("apply:count", 0) - before.get("apply:count", 0)
    if batches:
        parts.append(f"{batches:,.0f} batches applied ({updates / batches:,.1f} updates each)")
    renders = after.get("render:count", 0) - before.get("render:count", 0)
    if renders:
        seconds = after.get("render:sum", 0) - before.get("render:sum", 0)
        parts.append(f"{renders:,.0f} renders ({1000 * seconds / renders:,.0f} ms each)")
    return "; ".join(parts) or "no pipeline counters"


def charts_current(store: Store, jobids: list[str]) -> bool:
    """Every job's stored chart is drawn from its latest version and no render is due."""
    with store.redis.pipeline(transaction=False) as pipe:
        for jobid in jobids:
            pipe.hget(meta_key(jobid), "version").hget(chart_key(jobid), "version")
            pipe.zscore(RENDER_DUE, job_tag(jobid))
        replies = pipe.execute()
    for version, chart_version, due in zip(replies[::3], replies[1::3], replies[2::3]):
        if version is None or chart_version != version or due is not None:
            return False
    return True


def wait_charts(store: Store, jobids: list[str], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not charts_current(store, jobids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- updates sent from Python (setting up jobs; the loads themselves are wrk's) ---------------


class Connection:
    """A keep-alive HTTP/1.1 connection to the service."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def update_object(jobid: str, workid: str, current: float, total: float) -> dict:
    return {"jobid": jobid, "workid": workid, "current": current, "total": total, "ok": 1}


def post_batch(conn: Connection, updates: list[dict]) -> tuple[int, int]:
    """POST one JSON array; (HTTP status, number accepted)."""
    status, body = conn.request(
        "POST",
        "/progress/update",
        json.dumps(updates).encode(),
        {"Content-Type": "application/json"},
    )
    accepted = 0
    if 200 <= status < 300:
        try:
            accepted = int(json.loads(body).get("accepted", 0))
        except (ValueError, AttributeError, TypeError):
            accepted = 0
    return status, accepted


def batch_endpoint_works(base_url: str, jobid: str) -> str | None:
    """None if POST /progress/update takes a JSON array and answers 202 {"accepted": n};
    otherwise what it answered."""
    conn = Connection(base_url)
    try:
        status, body = conn.request(
            "POST",
            "/progress/update",
            json.dumps([update_object(jobid, "w0", 0, 1000000)] * 2).encode(),
            {"Content-Type": "application/json"},
        )
    finally:
        conn.close()
    try:
        accepted = json.loads(body).get("accepted")
    except (ValueError, AttributeError):
        accepted = None
    if status == 202 and accepted == 2:
        return None
    return f"HTTP {status}: {body[:200].decode(errors='replace')}"


def send_updates(base_url: str, updates: list[dict], batched: bool, threads: int = 4) -> int:
    """Send updates (batches of 1,000, or one request each); returns how many were accepted."""
    if batched:
        chunks = [updates[i : i + 1000] for i in range(0, len(updates), 1000)]
    else:
        chunks = [updates[i::threads] for i in range(threads)]

    def send(chunk: list[dict]) -> int:
        conn = Connection(base_url)
        try:
            if batched:
                return post_batch(conn, chunk)[1]
            ok = 0
            for u in chunk:
                status, _ = conn.request("GET", "/progress/update?" + urlencode(u))
                ok += 200 <= status < 300
            return ok
        finally:
            conn.close()

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(send, chunks))
