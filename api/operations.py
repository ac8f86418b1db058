"""What operators need: /healthz, /metrics in Prometheus' text format, and one structured log
line per request (logfmt: key=value, user strings JSON-quoted, never a query string or secret)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

import falcon

from tasks.celery_app import INGEST_QUEUE, RENDER_QUEUE
from tasks.settings import Settings
from tasks.store import LATENCY_BUCKETS, Store

log = logging.getLogger("progress.web")

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
    """Falcon middleware: counts update outcomes and logs every request on one line."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        status = resp.status_code
        if req.path == "/progress/update":
            if status == 202:
                accepted = resp.media.get("accepted") if isinstance(resp.media, dict) else 1
                key, n = "accepted", accepted if isinstance(accepted, int) and accepted > 1 else 1
            else:
                key, n = REJECTION_REASONS.get(status, "other"), 1
            with self._lock:
                self.counts[key] += n
        elapsed_ms = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        log.info(
            "event=request method=%s path=%s status=%d ms=%.1f client=%s jobid=%s",
            req.method,
            json.dumps(req.path),
            status,
            elapsed_ms * 1000,
            req.remote_addr,
            json.dumps(getattr(req.context, "jobid", None)),
        )


class Health:
    """200 when Redis answers and ingest and render workers have been seen consuming lately."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = time.time()
        stats = self.store.operational_stats([INGEST_QUEUE, RENDER_QUEUE])
        # Beat's sweep runs every sweep_every seconds and makes both kinds of worker check in.
        allowed = 3 * self.settings.sweep_every + 10
        reasons = []
        seen = {}
        for role in ("ingest", "render"):
            beat = stats.get(f"heartbeat:{role}")
            seen[role] = None if beat is None else round(now - beat, 1)
            if beat is None or now - beat > allowed:
                reasons.append(
                    f"no {role} worker has consumed a task in the last {allowed:g} s "
                    "(are the workers and beat running?)"
                )
        resp.media = {
            "status": "unavailable" if reasons else "ok",
            "reasons": reasons,
            "redis": "ok",
            "seconds_since_seen": seen,
            "pending_updates": stats["queue:inbox"],
        }
        resp.status = falcon.HTTP_503 if reasons else falcon.HTTP_200


class Metrics:
    def __init__(self, store: Store, request_log: RequestLog) -> None:
        self.store = store
        self.request_log = request_log

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        stats = self.store.operational_stats([INGEST_QUEUE, RENDER_QUEUE])
        counts = dict(self.request_log.counts)
        lines = [
            "# HELP progress_updates_accepted_total Updates this web process accepted.",
            "# TYPE progress_updates_accepted_total counter",
            f"progress_updates_accepted_total {counts.get('accepted', 0)}",
            "# HELP progress_updates_rejected_total Updates this web process refused, by reason.",
            "# TYPE progress_updates_rejected_total counter",
        ]
        for reason in sorted(set(REJECTION_REASONS.values()) | {"other"}):
            lines.append(
                f'progress_updates_rejected_total{{reason="{reason}"}} {counts.get(reason, 0)}'
            )
        lines += [
            "# HELP progress_queue_depth Work waiting, by queue.",
            "# TYPE progress_queue_depth gauge",
        ]
        for name in (INGEST_QUEUE, RENDER_QUEUE, "inbox", "claimed_batches", "renders_due"):
            lines.append(f'progress_queue_depth{{queue="{name}"}} {int(stats[f"queue:{name}"])}')
        lines += _gauge("progress_jobs", "Jobs stored.", stats.get("jobs", 0))
        lines += _gauge("progress_workers", "Worker rows stored.", stats.get("workers", 0))
        lines += [
            "# HELP progress_jobs_expired_total Jobs deleted after their maxage.",
            "# TYPE progress_jobs_expired_total counter",
            f"progress_jobs_expired_total {int(stats.get('expired_jobs', 0))}",
        ]
        lines += _histogram(
            "progress_apply_latency_seconds",
            "From accepting an update to applying it, per batch (its oldest update).",
            "apply",
            stats,
        )
        lines += _histogram("progress_render_seconds", "Time to draw one chart.", "render", stats)
        resp.content_type = "text/plain; version=0.0.4"
        resp.text = "\n".join(lines) + "\n"


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {int(value)}"]


def _histogram(name: str, help_text: str, field: str, stats: dict[str, float]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    cumulative = 0
    for bucket in (*LATENCY_BUCKETS, "+Inf"):
        cumulative += int(stats.get(f"{field}:le:{bucket}", 0))
        lines.append(f'{name}_bucket{{le="{bucket}"}} {cumulative}')
    lines.append(f"{name}_sum {stats.get(f'{field}:sum', 0.0)}")
    lines.append(f"{name}_count {int(stats.get(f'{field}:count', 0))}")
    return lines
