"""The pipeline end to end on the real processes: web -> Redis record -> Celery -> ingest ->
Redis -> render -> cached PNG, and beat's expiry."""

from __future__ import annotations

import threading
import time

import requests

from tasks.store import _keys, job_tag
from tests.harness import wait_until


def workers_of(service, jobid) -> dict[str, float]:
    doc = service.get("status", jobid=jobid).json()
    return {w["workid"]: w["current"] for w in doc["workers"]}


def test_update_sent_right_after_create_lands(live_service, jobid):
    assert live_service.get("create", jobid=jobid).status_code == 200
    assert (
        live_service.get("update", jobid=jobid, workid="w", current=1, total=2).status_code == 202
    )
    assert wait_until(lambda: workers_of(live_service, jobid) == {"w": 1.0}, 20, what="the update")


def test_a_chart_exists_right_after_create(live_service, jobid):
    created = live_service.get("create", jobid=jobid, desc="fresh")
    assert created.status_code == 200
    png = requests.get(created.json()["render"], timeout=5)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert png.headers["ETag"]
    again = requests.get(
        created.json()["render"], headers={"If-None-Match": png.headers["ETag"]}, timeout=5
    )
    assert again.status_code == 304 and again.content == b""


def test_recreate_drops_workers_and_queued_updates(live_service, store, jobid):
    live_service.get("create", jobid=jobid)
    live_service.get("update", jobid=jobid, workid="before", current=1, total=2)
    wait_until(lambda: workers_of(live_service, jobid) == {"before": 1.0}, 20, what="applied")

    live_service.kill("ingest")  # updates from now on stay queued
    try:
        for i in range(20):
            resp = live_service.get("update", jobid=jobid, workid=f"queued{i}", current=1, total=2)
            assert resp.status_code == 202
        assert live_service.get("create", jobid=jobid, desc="again").status_code == 200
        assert workers_of(live_service, jobid) == {}
        live_service.get("update", jobid=jobid, workid="after", current=2, total=2)
    finally:
        live_service.start("ingest")
    wait_until(lambda: workers_of(live_service, jobid) == {"after": 2.0}, 30, what="new update")
    wait_until(lambda: store.pending_updates() == 0, 30, what="queue drained")
    assert workers_of(live_service, jobid) == {"after": 2.0}


def test_last_update_of_each_worker_wins_under_concurrent_ingest(live_service, jobid):
    live_service.get("create", jobid=jobid)
    steps = 40

    def report(workid):
        with requests.Session() as session:
            for current in range(1, steps + 1):
                resp = session.get(
                    f"{live_service.url}/progress/update",
                    params={"jobid": jobid, "workid": workid, "current": current, "total": steps},
                    timeout=10,
                )
                assert resp.status_code == 202

    threads = [threading.Thread(target=report, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = {f"w{i}": float(steps) for i in range(8)}
    assert wait_until(lambda: workers_of(live_service, jobid) == final, 30, what="final states")


def test_renders_are_coalesced_and_the_last_update_is_drawn(live_service, store, jobid):
    interval = 0.5  # PROGRESS_RENDER_INTERVAL of the test service
    live_service.get("create", jobid=jobid)
    meta_key = _keys(job_tag(jobid))[0]
    renders_before = int(store.redis.hget(meta_key, "renders") or 0)
    started = time.monotonic()
    current = 0
    with requests.Session() as session:
        while time.monotonic() - started < 3:
            current += 1
            session.get(
                f"{live_service.url}/progress/update",
                params={"jobid": jobid, "workid": "w", "current": current, "total": 10**6},
                timeout=10,
            )
    elapsed = time.monotonic() - started
    wait_until(lambda: workers_of(live_service, jobid) == {"w": float(current)}, 20, what="apply")
    version = store.snapshot(jobid).version
    wait_until(
        lambda: store.chart(jobid, with_png=False).etag.split("-")[1] == str(version),
        10,
        what="the last version to be drawn",
    )
    renders = int(store.redis.hget(meta_key, "renders")) - renders_before
    assert current > 20  # many updates ...
    assert 1 <= renders <= elapsed / interval + 3  # ... few renders


def test_expired_job_is_gone_with_all_its_keys(live_service, store, jobid):
    live_service.get("create", jobid=jobid, maxage=1)
    live_service.get("update", jobid=jobid, workid="w", current=1, total=2)
    wait_until(
        lambda: live_service.get("status", jobid=jobid).status_code == 404, 20, what="expiry"
    )
    tag = job_tag(jobid)
    assert list(store.redis.scan_iter(match=f"progress:{{{tag}}}*")) == []
    assert live_service.get("render", jobid=jobid).status_code == 404
    assert (
        live_service.get("update", jobid=jobid, workid="w", current=2, total=2).status_code == 404
    )


def test_status_can_list_only_problem_workers(live_service, jobid):
    live_service.get("create", jobid=jobid)
    live_service.get("update", jobid=jobid, workid="fine", current=1, total=2)
    live_service.get("update", jobid=jobid, workid="broken", current=1, total=2, ok=0)
    live_service.get("update", jobid=jobid, workid="done", current=2, total=2)
    wait_until(lambda: len(workers_of(live_service, jobid)) == 3, 20, what="three workers")
    doc = live_service.get("status", jobid=jobid, workers="problems").json()
    assert [w["workid"] for w in doc["workers"]] == ["broken"]
    assert doc["counts"] == {"running": 1, "done": 1, "failed": 1, "stale": 0}
    assert live_service.get("status", jobid=jobid, workers="none").json()["workers"] == []
    assert doc["version"] >= 1 and doc["stale_after"] == 300 and doc["now"] >= doc["created"]
