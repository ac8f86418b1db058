"""/metrics in process: what prometheus_client's own parser reads from it, and 503 without Redis."""

from __future__ import annotations

import platform
import time

import redis
from prometheus_client.parser import text_string_to_metric_families

from api.operations import RequestLog

# Family names as the parser gives them (a counter's without its _total), and their types.
FAMILIES = {
    "progress_build_info": "gauge",
    "progress_updates_accepted": "counter",
    "progress_updates_rejected": "counter",
    "progress_queue_messages": "gauge",
    "progress_inbox_updates": "gauge",
    "progress_claimed_batches": "gauge",
    "progress_renders_due": "gauge",
    "progress_queue_depth": "gauge",
    "progress_jobs": "gauge",
    "progress_workers": "gauge",
    "progress_jobs_expired": "counter",
    "progress_jobs_deleted": "counter",
    "progress_apply_latency_seconds": "histogram",
    "progress_render_seconds": "histogram",
    "progress_http_request_duration_seconds": "histogram",
    "progress_redis_memory_used_bytes": "gauge",
    "progress_redis_memory_max_bytes": "gauge",
}


def scrape(client) -> dict[str, dict[tuple, float]]:
    """Each family's samples, by (sample name, sorted labels); checks every family's type."""
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert {name: f.type for name, f in families.items()} == FAMILIES
    return {
        name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
        for name, f in families.items()
    }


def test_metrics_parse_with_known_values(client, store):
    time.sleep(2 * RequestLog.FLUSH_EVERY)  # counts of earlier tests' requests have landed
    before = scrape(client)
    store.add_counts({"updates:accepted": 3})
    store.observe("render", 0.02)
    after = scrape(client)

    accepted = ("progress_updates_accepted_total", ())
    assert (
        after["progress_updates_accepted"][accepted]
        == before["progress_updates_accepted"][accepted] + 3
    )
    reasons = {dict(labels)["reason"] for _, labels in after["progress_updates_rejected"]}
    assert {"invalid", "unknown_job", "wrong_secret", "other"} <= reasons
    queues = {dict(labels)["queue"] for _, labels in after["progress_queue_messages"]}
    assert queues == {"ingest", "render", "notify"}  # all messages: their sum means something

    # A render worker of another test may observe too: ours is in (0.01, 0.025].
    def render(samples, sample, le=None):
        labels = (("le", le),) if le else ()
        return samples["progress_render_seconds"][(f"progress_render_seconds{sample}", labels)]

    assert render(after, "_count") >= render(before, "_count") + 1
    assert render(after, "_sum") >= render(before, "_sum") + 0.02 - 1e-9
    in_bucket = [
        render(s, "_bucket", "0.025") - render(s, "_bucket", "0.01") for s in (before, after)
    ]
    assert in_bucket[1] >= in_bucket[0] + 1
    assert render(after, "_bucket", "+Inf") == render(after, "_count")
    assert not any(name.endswith("_created") for f in after.values() for name, _ in f)


def test_metrics_without_redis_answer_503(client, store, monkeypatch):
    def unreachable(queues):
        raise redis.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(store, "operational_stats", unreachable)
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"


def test_build_info_names_the_release(client):
    (labels,) = [dict(labels) for _, labels in scrape(client)["progress_build_info"]]
    assert labels == {"version": "0.1.0", "python": platform.python_version()}


def request_durations(client) -> dict[tuple, float]:
    time.sleep(2 * RequestLog.FLUSH_EVERY)  # the requests' counts have reached Redis
    return scrape(client)["progress_http_request_duration_seconds"]


def test_request_latency_by_route_template_never_by_raw_path(client):
    before = request_durations(client)
    for i in range(3):
        client.simulate_get("/progress/status", params={"jobid": f"no such job {i}"})
    client.simulate_post("/progress/status", params={"jobid": "no such job"})
    client.simulate_get("/progress/static/none-such.css")
    client.simulate_get("/some/unknown/path/42")
    client.simulate_request("BREW", "/progress/status")
    after = request_durations(client)

    def added(route: str, method: str, sample: str = "_count", le: str | None = None) -> float:
        labels = tuple(
            sorted({"route": route, "method": method, **({"le": le} if le else {})}.items())
        )
        key = (f"progress_http_request_duration_seconds{sample}", labels)
        return after.get(key, 0) - before.get(key, 0)

    assert added("/progress/status", "GET") == 3
    assert added("/progress/status", "GET", "_bucket", "+Inf") == 3
    assert added("/progress/status", "GET", "_sum") > 0
    assert added("/progress/status", "POST") == 1
    assert added("/progress/static/{name}", "GET") == 1
    assert added("unmatched", "GET") == 1
    assert added("/progress/status", "other") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any("unknown" in route or "none-such" in route for route in routes)
