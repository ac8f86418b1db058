"""Update-to-visible latency: from the 2xx of a probe update until /progress/render serves a
chart at least as new as the job version that includes it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import requests

from bench.pipeline import meta_key, workers_key
from tasks.store import STAMP_DIGITS, Store

PROBE_WORKER = "probe"


def etag_version(etag: str | None) -> int:
    """The version field of "<incarnation>-<version>-<hash>" (quoted or weak or not); -1."""
    if not etag:
        return -1
    parts = etag.removeprefix("W/").strip('"').split("-")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return -1


@dataclass(frozen=True)
class Probe:
    applied_s: float | None  # 2xx -> row in Redis
    visible_s: float | None  # 2xx -> chart of that version served; None: not within timeout
    error: str = ""


def _stamp(store: Store, jobid: str) -> bytes:
    """The probe row's 17-digit stamp (b"" if none): it changes when the next probe is applied,
    since only probes write this worker and stamps only grow."""
    row = store.redis.hget(workers_key(jobid), PROBE_WORKER)
    return row[:STAMP_DIGITS] if row else b""


def probe_once(
    session: requests.Session, base: str, store: Store, jobid: str, current: int, etag, timeout
) -> tuple[Probe, str | None]:
    params = {"jobid": jobid, "workid": PROBE_WORKER, "current": current, "total": 1000}
    before = _stamp(store, jobid)
    response = session.get(f"{base}/progress/update", params=params, timeout=10)
    t0 = time.monotonic()
    if not 200 <= response.status_code < 300:
        return Probe(None, None, f"update answered {response.status_code}"), etag
    deadline = t0 + timeout
    while _stamp(store, jobid) <= before:
        if time.monotonic() > deadline:
            return Probe(None, None, "not applied"), etag
        time.sleep(0.005)
    applied = time.monotonic() - t0
    version = int(store.redis.hget(meta_key(jobid), "version"))
    while etag_version(etag) < version:
        if time.monotonic() > deadline:
            return Probe(applied, None, "chart not updated"), etag
        headers = {"If-None-Match": etag} if etag else {}
        r = session.get(f"{base}/progress/render", params={"jobid": jobid}, headers=headers)
        if r.status_code in (200, 304):
            etag = r.headers.get("ETag", etag)
        if etag_version(etag) < version:
            time.sleep(0.01)
    return Probe(applied, time.monotonic() - t0), etag


def run_probes(
    base: str, store: Store, jobid: str, count: int = 20, spacing=(0.5, 1.5), timeout=10.0
) -> list[Probe]:
    """`count` probes, each sent a random 0.5-1.5 s after the previous one became visible.
    A probe becomes visible just after a render, and renders repeat every render interval
    (1 s), so a gap spread over exactly one interval sends the next probe at a uniformly random
    point of the render cycle; a narrower spread would sample some phases only."""
    rng = random.Random(1)
    probes, etag = [], None
    with requests.Session() as session:
        for i in range(1, count + 1):
            time.sleep(rng.uniform(*spacing))
            probe, etag = probe_once(session, base, store, jobid, i, etag, timeout)
            probes.append(probe)
    return probes
