"""What operators need: /livez, /readyz (and /healthz, the same), /metrics in Prometheus' text
format, and one logfmt line per request (domain.logs' format, never a query string or secret)."""

from __future__ import annotations

import bisect
import importlib.metadata
import platform
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from domain import logs
from tasks.identity import IdentityGuard, StoreMismatch
from tasks.pipeline import INGEST_QUEUE, NOTIFY_QUEUE, RENDER_QUEUE
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
# Request latency buckets (seconds): most answers take a few milliseconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Methods counted by name; any other (a client can send anything) is "other", and a path that
# matches no route is "unmatched": the labels stay a small, fixed set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED_ROUTE = "unmatched"
# A request the HTTP server refused before routing (bad URI or header, body too large).
REFUSED_ROUTE = "refused"
UPDATE_ROUTE = "/progress/update"
# Celery queues: their depths are all messages, so their sum is the work waiting in Redis.
QUEUES = (INGEST_QUEUE, RENDER_QUEUE, NOTIFY_QUEUE)


class RequestLog:
    """Falcon middleware: logs every request on one line, and counts update outcomes and each
    request's latency by route and method.

    A background thread writes the lines to stderr, and adds the counts to the service-wide ones
    in Redis, every FLUSH_EVERY seconds: per request, the logging module or a Redis call would
    cost a third of an update. A process killed with SIGKILL loses at most that much. Latency
    is kept in Redis like the other counts, so that every web process (each answers /metrics in
    turn) reports the whole service's histogram."""

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
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        route = req.uri_template or UNMATCHED_ROUTE
        jobid = getattr(req.context, "jobid", None)
        self.record(req.method, route, req.path, resp.status_code, elapsed, req.remote_addr, jobid)
        if route == UPDATE_ROUTE:
            self._count_update(resp.status_code, resp)

    def refused(self, method: str, path: str, status: int, elapsed: float, client: str) -> None:
        """A request the HTTP server answered itself, before the app (api/server.py)."""
        self.record(method, REFUSED_ROUTE, path, status, elapsed, client, None)
        if path == UPDATE_ROUTE:
            self._count_update(status, None)

    def record(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        elapsed: float,
        client: str | None,
        jobid: str | None,
    ) -> None:
        """One request's log line and its latency."""
        method = method if method in METHODS else "other"
        # Written out rather than through logs.line: this runs on every request. Only the path
        # and the job id come from the client, so only they need quoting (the path always is,
        # as it always was).
        line = (
            f"ts={logs.timestamp()} level=info logger=progress.web msg=request event=request "
            f"method={method} route={route} path={logs.quoted(path)} status={status} "
            f"ms={elapsed * 1000:.1f} client={client}"
        )
        if jobid is not None:
            line += f" jobid={logs.quote(jobid)}"
        series = f"http|{method}|{route}"
        bucket = bisect.bisect_left(REQUEST_BUCKETS, elapsed)
        with self._lock:
            self._lines.append(line + "\n")
            self.counts[f"{series}|le|{bucket}"] += 1
            self.counts[f"{series}|sum_us"] += int(elapsed * 1e6)

    def _count_update(self, status: int, resp: falcon.Response | None) -> None:
        if status == 202 and resp is not None:
            accepted = resp.media.get("accepted") if isinstance(resp.media, dict) else 1
            outcome = "accepted"
            n = accepted if isinstance(accepted, int) and accepted > 1 else 1
        else:
            outcome, n = REJECTION_REASONS.get(status, "other"), 1
        with self._lock:
            self.counts[f"updates:{outcome}"] += n

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
                    self.store.add_counts(dict(counts))
                except Exception:  # Redis is down: keep them for the next flush
                    with self._lock:
                        self.counts.update(counts)


class Live:
    """200 whenever this process answers: a liveness probe restarts a web process only when it
    is stuck itself, never because Redis or another process type is down (that is /readyz)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Health:
    """/readyz (and /healthz): 200 when Redis takes writes, beat is sending its sweep, and
    ingest, render and (with completion hooks on) notify workers have been seen consuming
    lately; otherwise 503 naming the process type that is missing."""

    def __init__(self, store: Store, settings: Settings, identity: IdentityGuard) -> None:
        self.store = store
        self.settings = settings
        self.identity = identity

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = time.time()
        store, store_problem = self._store(now)
        stats = self.store.operational_stats([INGEST_QUEUE, RENDER_QUEUE])
        roles = worker_roles(self.settings)
        seen = {
            role: None
            if stats.get(f"heartbeat:{role}") is None
            else round(now - stats[f"heartbeat:{role}"], 1)
            for role in ("beat", *roles)
        }
        missing = missing_processes(seen, self.settings.sweep_every, roles)
        allowed = heartbeat_allowance(self.settings.sweep_every)
        refusal = self.store.write_refusal(now)
        reasons = [] if refusal is None else [f"redis refuses writes: {refusal}"]
        reasons += [store_problem] if store_problem else []
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
            "store": store,
            "seconds_since_seen": seen,
            "pending_updates": stats["queue:inbox"],
        }
        resp.status = falcon.HTTP_503 if reasons else falcon.HTTP_200

    def _store(self, now: float) -> tuple[dict, str | None]:
        """The store's identity as this process knows it, and what is wrong with it if anything
        (another store than this process's). A reset is reported, not a reason to be unready:
        the service works on the new store, and unknown jobs' answers name the reset."""
        try:
            found = self.identity.check(now)
        except StoreMismatch as exc:
            return {"identity": exc.found.id, "matches": False}, str(exc)
        store = {"identity": found.id, "created": found.created, "matches": True}
        if found.reset_at is not None:
            store.update(reset_at=found.reset_at, lost_identity=found.previous)
        return store, None


def worker_roles(settings: Settings) -> tuple[str, ...]:
    """The Celery worker types the service needs; each checks in through its own queue when
    beat's sweep asks it to. Notify is needed only while completion hooks are on."""
    return ("ingest", "render", "notify") if settings.notify_allowed else ("ingest", "render")


def heartbeat_allowance(sweep_every: float) -> float:
    """How long a process type may go unseen: a few sweep periods."""
    return 3 * sweep_every + 10


def missing_processes(
    seen: dict[str, float | None], sweep_every: float, roles: tuple[str, ...]
) -> list[str]:
    """Process types not seen lately, given seconds since each was seen (None: never).

    Beat's sweep is what makes the workers check in (through their own queues), so without beat
    the workers' silence says nothing about them: only beat is named then."""
    allowed = heartbeat_allowance(sweep_every)

    def absent(role: str) -> bool:
        return seen.get(role) is None or seen[role] > allowed

    if absent("beat"):
        return ["beat"]
    return [role for role in roles if absent(role)]


class ServiceMetrics:
    """A prometheus_client collector: the store's service-wide figures, read on every scrape.

    Errors reading Redis are left to propagate, so that /metrics answers 503 like the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        stats = self.store.operational_stats([*QUEUES])
        yield _build_info()
        yield CounterMetricFamily(
            "progress_updates_accepted_total", "Updates accepted.", stats.get("updates:accepted", 0)
        )
        rejected = CounterMetricFamily(
            "progress_updates_rejected_total", "Updates refused, by reason.", labels=["reason"]
        )
        for reason in sorted(set(REJECTION_REASONS.values()) | {"other"}):
            rejected.add_metric([reason], stats.get(f"updates:{reason}", 0))
        yield rejected
        yield from _backlog(stats)
        yield GaugeMetricFamily("progress_jobs", "Jobs stored.", stats.get("jobs", 0))
        yield GaugeMetricFamily("progress_workers", "Worker rows stored.", stats.get("workers", 0))
        yield CounterMetricFamily(
            "progress_jobs_expired_total",
            "Jobs deleted after their maxage.",
            stats.get("expired_jobs", 0),
        )
        yield CounterMetricFamily(
            "progress_jobs_deleted_total",
            "Jobs deleted on request (/progress/delete).",
            stats.get("deleted_jobs", 0),
        )
        yield _histogram(
            "progress_apply_latency_seconds",
            "From accepting an update to applying it, per batch (its oldest update).",
            "apply",
            stats,
        )
        yield _histogram("progress_render_seconds", "Time to draw one chart.", "render", stats)
        yield _request_durations(stats)
        yield from self._redis_memory()

    def _redis_memory(self) -> Iterator[Metric]:
        used, limit = self.store.memory()
        yield GaugeMetricFamily(
            "progress_redis_memory_used_bytes", "Memory Redis uses (INFO used_memory).", used
        )
        yield GaugeMetricFamily(
            "progress_redis_memory_max_bytes",
            "Redis' maxmemory; 0: no limit, which the README advises against.",
            limit,
        )


def _build_info() -> Metric:
    info = GaugeMetricFamily(
        "progress_build_info",
        "Always 1; the labels name the running release.",
        labels=["version", "python"],
    )
    info.add_metric([_version(), platform.python_version()], 1)
    return info


def _version() -> str:
    try:
        return importlib.metadata.version("progress-service")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


def _backlog(stats: dict[str, float]) -> Iterator[Metric]:
    """Work waiting, one family per unit so that each family's sum means something."""
    messages = GaugeMetricFamily(
        "progress_queue_messages", "Celery messages waiting in each queue.", labels=["queue"]
    )
    for queue in QUEUES:
        messages.add_metric([queue], stats[f"queue:{queue}"])
    yield messages
    yield GaugeMetricFamily(
        "progress_inbox_updates",
        "Updates accepted and not yet claimed by an ingest batch.",
        stats["queue:inbox"],
    )
    yield GaugeMetricFamily(
        "progress_claimed_batches",
        "Ingest batches claimed and not yet applied (re-sent by beat when overdue).",
        stats["queue:claimed_batches"],
    )
    yield GaugeMetricFamily(
        "progress_renders_due", "Jobs whose chart waits to be drawn.", stats["queue:renders_due"]
    )
    # The old mixed family (messages, updates, batches and jobs under one name), kept for
    # dashboards made before the split; summing it means nothing.
    depth = GaugeMetricFamily(
        "progress_queue_depth",
        "Deprecated: use progress_queue_messages and the backlog gauges.",
        labels=["queue"],
    )
    for name in (INGEST_QUEUE, RENDER_QUEUE, "inbox", "claimed_batches", "renders_due"):
        depth.add_metric([name], stats[f"queue:{name}"])
    yield depth


def _histogram(name: str, help_text: str, field: str, stats: dict[str, float]) -> Metric:
    """The store keeps a count per bucket; Prometheus wants them cumulative (+Inf: the count)."""
    buckets, cumulative = [], 0.0
    for bucket in (*LATENCY_BUCKETS, "+Inf"):
        cumulative += stats.get(f"{field}:le:{bucket}", 0)
        buckets.append((str(bucket), cumulative))
    return HistogramMetricFamily(name, help_text, buckets, stats.get(f"{field}:sum", 0.0))


def _request_durations(stats: dict[str, float]) -> Metric:
    """The web processes' request latency, from the per-bucket counts RequestLog keeps in Redis
    under `http|METHOD|ROUTE|le|BUCKET_INDEX` and `http|METHOD|ROUTE|sum_us`."""
    counts: dict[tuple[str, str], list[float]] = defaultdict(
        lambda: [0.0] * (len(REQUEST_BUCKETS) + 1)
    )
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for field, value in stats.items():
        if not field.startswith("http|"):
            continue
        _, method, route, *rest = field.split("|")
        if rest == ["sum_us"]:
            sums[(route, method)] += value / 1e6
        elif rest[0] == "le" and int(rest[1]) < len(REQUEST_BUCKETS) + 1:
            counts[(route, method)][int(rest[1])] += value
    family = HistogramMetricFamily(
        "progress_http_request_duration_seconds",
        "Time to answer a request, by route template and method (all web processes).",
        labels=["route", "method"],
    )
    for (route, method), per_bucket in sorted(counts.items()):
        cumulative, buckets = 0.0, []
        for bound, n in zip((*REQUEST_BUCKETS, "+Inf"), per_bucket):
            cumulative += n
            buckets.append((str(bound), cumulative))
        family.add_metric([route, method], buckets, sums[(route, method)])
    return family


class Metrics:
    """Service-wide figures, the same from every web process (counts lag by up to a second)."""

    def __init__(self, store: Store) -> None:
        # A registry of its own: the default one would add this process' own figures.
        self.registry = CollectorRegistry()
        self.registry.register(ServiceMetrics(store))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = generate_latest(self.registry)
        resp.content_type = CONTENT_TYPE_LATEST
