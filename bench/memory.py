"""Redis memory per worker row and per job (with its cached PNG): INFO used_memory before and
after building them through the service, cross-checked with MEMORY USAGE of the job's keys."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.pipeline import (
    chart_key,
    create_jobs,
    processed,
    send_updates,
    update_object,
    wait_applied,
    wait_charts,
    workers_key,
)
from tasks.store import RENDER_DUE, Store
from tasks.store import job_keys as store_job_keys

# kombu's Redis transport keeps reserved (e.g. delayed render) messages here until they run
KOMBU_UNACKED = "unacked"


def wait_quiet(store: Store, timeout: float = 20.0) -> bool:
    """No update pending, no render due, no Celery message queued or held: nothing in Redis is
    about to grow or shrink on its own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(RENDER_DUE).hlen(KOMBU_UNACKED).llen("ingest").llen("render")
            busy = sum(pipe.execute()) + store.pending_updates()
        if not busy:
            return True
        time.sleep(0.1)
    return False


def used_memory(store: Store) -> int:
    """INFO used_memory without the transient client and AOF buffers (a big client buffer freed
    between two readings would otherwise hide what the data added), once two readings agree."""
    last = None
    for _ in range(20):
        info = store.redis.info("memory")
        value = int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))
        value -= int(info.get("mem_aof_buffer", 0))
        if value == last:
            break
        last = value
        time.sleep(0.2)
    return value


def key_bytes(store: Store, keys: list[str]) -> int:
    with store.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(v or 0 for v in pipe.execute())


def job_keys(jobid: str) -> list[str]:
    return store_job_keys(jobid)


@dataclass(frozen=True)
class Footprint:
    used_memory_delta: int  # INFO used_memory after - before (see used_memory)
    key_bytes: int  # MEMORY USAGE of the jobs' own keys (meta, workers, chart, indexes)
    workers_bytes: int  # MEMORY USAGE of the jobs' workers hashes
    chart_bytes: int  # MEMORY USAGE of the jobs' chart hashes (PNG included)
    complete: bool  # every update applied and every chart current


def build_jobs(service, store: Store, jobids: list[str], workers: int, batched: bool) -> Footprint:
    """Create jobs with `workers` workers each through the service, wait until applied and
    charted, and measure what they added."""
    wait_quiet(store)
    before = used_memory(store)
    create_jobs(service, jobids)
    baseline = processed(store, jobids)
    updates = [
        update_object(jobid, f"w{i}", i % 100, 100) for jobid in jobids for i in range(workers)
    ]
    accepted = send_updates(service.url, updates, batched)
    applied = wait_applied(store, jobids, baseline, accepted, timeout=60)
    charted = wait_charts(store, jobids, timeout=60)
    wait_quiet(store)
    after = used_memory(store)
    keys = [k for jobid in jobids for k in job_keys(jobid)]
    return Footprint(
        used_memory_delta=after - before,
        key_bytes=key_bytes(store, keys),
        workers_bytes=key_bytes(store, [workers_key(j) for j in jobids]),
        chart_bytes=key_bytes(store, [chart_key(j) for j in jobids]),
        complete=accepted == len(updates) and applied.processed >= accepted and charted,
    )
