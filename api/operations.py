"""What operators need: /healthz, /metrics in Prometheus' text format, and one structured log
line per request (logfmt: key=value, user strings JSON-quoted, never a query string or secret)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tasks.pipeline import INGEST_QUEUE, RENDER_QUEUE
from tasks.settings import Settings
from tasks.store import LATENCY_BUCKETS, Store

# Why an update was refused, by the status it was answered with.
REJECTION_REASONS = {
    400: "invalid",
    403: "wrong_secret",
    404: "unknown_job",
    409: "too_many_workers",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}


class RequestLog:
    """Falcon middleware: counts update outcomes and logs every request on one line.

    A background thread writes the lines to stderr, and adds the counts to the service-wide ones
    in Redis, every FLUSH_EVERY seconds: per request, the logging module or a Redis call would
    cost a third of an update. A process killed with SIGKILL loses at most that much."""

    FLUSH_EVERY = 0.2

    def __init__(self, store: Store, stream=None) -> None:
        self.store = store
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._stream = stream or sys.stderr
        threading.Thread(target=self._flush_forever, name="request-log", daemon=True).start()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        status = resp.status_code
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        line = (
            f"ts={_timestamp()} level=INFO logger=progress.web "
            f"event=request method={req.method} path={json.dumps(req.path)} status={status} "
            f"ms={elapsed * 1000:.1f} client={req.remote_addr} "
            f"jobid={json.dumps(getattr(req.context, 'jobid', None))}\n"
        )
        if req.path == "/progress/update":
            if status == 202:
                accepted = resp.media.get("accepted") if isinstance(resp.media, dict) else 1
                key, n = "accepted", accepted if isinstance(accepted, int) and accepted > 1 else 1
            else:
                key, n = REJECTION_REASONS.get(status, "other"), 1
        else:
            key, n = "", 0
        with self._lock:
            self._lines.append(line)
            if n:
                self.counts[key] += n

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_EVERY)
            with self._lock:
                lines, self._lines = self._lines, []
                counts, self.counts = self.counts, Counter()
            if lines:
                self._stream.write("".join(lines))
                self._stream.flush()
            if counts:
                try:
                    self.store.add_counts({f"updates:{k}": n for k, n in counts.items()})
                except Exception:  # Redis is down: keep them for the next flush
                    with self._lock:
                        self.counts.update(counts)


_stamp_cache: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """The current second, formatted once per second rather than once per request."""
    global _stamp_cache
    second = int(time.time())
    if _stamp_cache[0] != second:
        _stamp_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second)))
    return _stamp_cache[1]


class Health:
    """200 when Redis answers, beat is sending its sweep, and ingest and render workers have
    been seen consuming lately; otherwise 503 naming the process type that is missing."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = time.time()
        stats = self.store.operational_stats([INGEST_QUEUE, RENDER_QUEUE])
        seen = {
            role: None
            if stats.get(f"heartbeat:{role}") is None
            else round(now - stats[f"heartbeat:{role}"], 1)
            for role in ("beat", "ingest", "render")
        }
        missing = missing_processes(seen, self.settings.sweep_every)
        allowed = heartbeat_allowance(self.settings.sweep_every)
        refusal = self.store.write_refusal(now)
        reasons = [] if refusal is None else [f"redis refuses writes: {refusal}"]
        reasons += [
            f"beat has not sent its sweep in the last {allowed:g} s (is the beat process running?)"
            if role == "beat"
            else f"no {role} worker has consumed a task in the last {allowed:g} s "
            f"(are the {role} workers running?)"
            for role in missing
        ]
        resp.media = {
            "status": "unavailable" if reasons else "ok",
            "missing": missing,
            "reasons": reasons,
            "redis": "ok" if refusal is None else "refuses writes",
            "seconds_since_seen": seen,
            "pending_updates": stats["queue:inbox"],
        }
        resp.status = falcon.HTTP_503 if reasons else falcon.HTTP_200


def heartbeat_allowance(sweep_every: float) -> float:
    """How long a process type may go unseen: a few sweep periods."""
    return 3 * sweep_every + 10


def missing_processes(seen: dict[str, float | None], sweep_every: float) -> list[str]:
    """Process types not seen lately, given seconds since each was seen (None: never).

    Beat's sweep is what makes the workers check in (through their own queues), so without beat
    the workers' silence says nothing about them: only beat is named then."""
    allowed = heartbeat_allowance(sweep_every)

    def absent(role: str) -> bool:
        return seen.get(role) is None or seen[role] > allowed

    if absent("beat"):
        return ["beat"]
    return [role for role in ("ingest", "render") if absent(role)]


class ServiceMetrics:
    """A prometheus_client collector: the store's service-wide figures, read on every scrape.

    Errors reading Redis are left to propagate, so that /metrics answers 503 like the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        stats = self.store.operational_stats([INGEST_QUEUE, RENDER_QUEUE])
        yield CounterMetricFamily(
            "progress_updates_accepted_total", "Updates accepted.", stats.get("updates:accepted", 0)
        )
        rejected = CounterMetricFamily(
            "progress_updates_rejected_total", "Updates refused, by reason.", labels=["reason"]
        )
        for reason in sorted(set(REJECTION_REASONS.values()) | {"other"}):
            rejected.add_metric([reason], stats.get(f"updates:{reason}", 0))
        yield rejected
        depth = GaugeMetricFamily(
            "progress_queue_depth", "Work waiting, by queue.", labels=["queue"]
        )
        for name in (INGEST_QUEUE, RENDER_QUEUE, "inbox", "claimed_batches", "renders_due"):
            depth.add_metric([name], stats[f"queue:{name}"])
        yield depth
        yield GaugeMetricFamily("progress_jobs", "Jobs stored.", stats.get("jobs", 0))
        yield GaugeMetricFamily("progress_workers", "Worker rows stored.", stats.get("workers", 0))
        yield CounterMetricFamily(
            "progress_jobs_expired_total",
            "Jobs deleted after their maxage.",
            stats.get("expired_jobs", 0),
        )
        yield _histogram(
            "progress_apply_latency_seconds",
            "From accepting an update to applying it, per batch (its oldest update).",
            "apply",
            stats,
        )
        yield _histogram("progress_render_seconds", "Time to draw one chart.", "render", stats)


def _histogram(name: str, help_text: str, field: str, stats: dict[str, float]) -> Metric:
    """The store keeps a count per bucket; Prometheus wants them cumulative (+Inf: the count)."""
    buckets, cumulative = [], 0.0
    for bucket in (*LATENCY_BUCKETS, "+Inf"):
        cumulative += stats.get(f"{field}:le:{bucket}", 0)
        buckets.append((str(bucket), cumulative))
    return HistogramMetricFamily(name, help_text, buckets, stats.get(f"{field}:sum", 0.0))


class Metrics:
    """Service-wide figures, the same from every web process (counts lag by up to a second)."""

    def __init__(self, store: Store) -> None:
        # A registry of its own: the default one would add this process' own figures.
        self.registry = CollectorRegistry()
        self.registry.register(ServiceMetrics(store))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self.registry)
        resp.content_type = CONTENT_TYPE_LATEST
