"""HTTP resources: validate, hand over to the pipeline or read the store, answer."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

import falcon

from api import pages
from api.chart_cache import ChartCache
from api.openapi import openapi_spec
from api.params import parse, read_json_updates, read_params
from api.ratelimit import RateLimiter
from domain.model import AcceptOutcome, JobSnapshot, WorkerState, summarize, worker_state
from tasks.pipeline import Pipeline, WorkerReport
from tasks.settings import Settings
from tasks.store import Store


class JobError(Exception):
    def __init__(self, jobid: str) -> None:
        super().__init__(jobid)
        self.jobid = jobid


class JobNotFound(JobError):
    """No job has this id: never created, or expired."""


class WrongSecret(JobError):
    """The job was created with a secret, and the request did not present it."""


def job_urls(req: falcon.Request, settings: Settings, jobid: str) -> dict[str, str]:
    base = settings.public_url.rstrip("/") or req.prefix
    query = urlencode({"jobid": jobid})
    return {name: f"{base}/progress/{name}?{query}" for name in ("show", "render", "status")}


class Resource:
    """Every endpoint answers GET with a query and POST with a form alike."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = read_params(req, self.settings)
        req.context.jobid = params.get("jobid")  # for the request log
        self.handle(req, resp, params)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.on_get(req, resp)

    def handle(self, req: falcon.Request, resp: falcon.Response, params: dict[str, str]) -> None:
        raise NotImplementedError

    def snapshot(self, jobid: str) -> JobSnapshot:
        snapshot = self.store.snapshot(jobid)
        if snapshot is None:
            raise JobNotFound(jobid)
        return snapshot


class Create(Resource):
    def __init__(self, store: Store, settings: Settings, pipeline: Pipeline) -> None:
        super().__init__(store, settings)
        self.pipeline = pipeline

    def handle(self, req, resp, params):
        s = self.settings
        p = parse("create", params, s)
        jobid, desc, maxage = p["jobid"], p["desc"], p["maxage"]
        created = self.pipeline.create_job(jobid, desc, maxage, p["secret"], p["notify"])
        if created is None:
            raise WrongSecret(jobid)
        incarnation, now = created
        self._wait_for_first_chart(jobid, incarnation)
        resp.media = {
            "jobid": jobid,
            "desc": desc,
            "maxage": maxage,
            "created": now,
            **job_urls(req, s, jobid),
        }

    def _wait_for_first_chart(self, jobid: str, incarnation: str) -> None:
        """So that a chart exists when create answers; a busy renderer only delays the answer."""
        deadline = time.monotonic() + self.settings.create_wait
        while time.monotonic() < deadline:
            chart = self.store.chart(jobid, with_png=False)
            if chart and chart.etag.startswith(incarnation):
                return
            time.sleep(0.01)


class Update(Resource):
    """One worker's state from a query or form; or, as a POST of a JSON array of such objects,
    many at once (all accepted, or none)."""

    def __init__(self, store: Store, settings: Settings, pipeline: Pipeline) -> None:
        super().__init__(store, settings)
        self.pipeline = pipeline
        self.limiter = RateLimiter(settings.update_rate_limit)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_type and req.content_type.startswith(falcon.MEDIA_JSON):
            updates = read_json_updates(req, self.settings)
            self.limiter.charge(req.remote_addr, len(updates))
            self.accept(resp, updates, all_or_nothing=True)
        else:
            self.on_get(req, resp)

    def handle(self, req, resp, params):
        self.limiter.charge(req.remote_addr)
        self.accept(resp, [params], all_or_nothing=False)

    def report(self, params: dict[str, str]) -> WorkerReport:
        report = WorkerReport(**parse("update", params, self.settings))
        if not math.isfinite(100 * report.current / report.total):
            raise falcon.HTTPInvalidParam(
                "current / total is too large to be a percentage", "total"
            )
        return report

    def accept(self, resp, params_list: list[dict[str, str]], all_or_nothing: bool) -> None:
        reports = [
            _for_item(i, len(params_list), self.report, params)
            for i, params in enumerate(params_list)
        ]
        statuses = self.pipeline.accept(reports, all_or_nothing)
        for report, status in zip(reports, statuses):
            if status == AcceptOutcome.UNKNOWN_JOB:
                raise JobNotFound(report.jobid)
            if status == AcceptOutcome.WRONG_SECRET:
                raise WrongSecret(report.jobid)
            if status != AcceptOutcome.ACCEPTED:
                raise falcon.HTTPConflict(
                    title="Too many workers",
                    description=f"job {report.jobid!r} already has "
                    f"{self.settings.max_workers_per_job} workers, the most a job may have "
                    "(PROGRESS_MAX_WORKERS_PER_JOB)",
                )
        resp.status = falcon.HTTP_202
        resp.media = {"accepted": len(reports)} if all_or_nothing else {"accepted": True}


def _for_item(index: int, count: int, validate, params: dict[str, str]):
    """Validate one item; in a batch, errors say which item."""
    try:
        return validate(params)
    except falcon.HTTPError as exc:
        if count == 1 and index == 0:
            raise
        raise falcon.HTTPBadRequest(
            title=exc.title, description=f"update [{index}]: {exc.description}"
        ) from exc


WORKER_FILTERS = {
    "all": lambda state: True,
    "problems": lambda state: state in (WorkerState.FAILED, WorkerState.STALE),
    "none": lambda state: False,
}


class Status(Resource):
    def handle(self, req, resp, params):
        p = parse("status", params, self.settings)
        snapshot = self.snapshot(p["jobid"])
        resp.media = status_document(
            snapshot, time.time(), self.settings.stale_after, WORKER_FILTERS[p["workers"]]
        )


class Render(Resource):
    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(store, settings)
        self.charts = ChartCache(store, ttl=settings.render_interval / 4)

    def handle(self, req, resp, params):
        jobid = parse("render", params, self.settings)["jobid"]
        chart = self.charts.get(jobid)
        if chart is None:
            if not self.store.job_exists(jobid):
                raise JobNotFound(jobid)
            raise falcon.HTTPServiceUnavailable(
                description="the first chart of this job is being drawn", retry_after=1
            )
        resp.cache_control = ["no-cache"]
        resp.etag = chart.etag
        if req.if_none_match and any(tag == chart.etag for tag in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "image/png"
        resp.data = chart.png


class Show(Resource):
    def handle(self, req, resp, params):
        p = parse("show", params, self.settings)
        jobid, interval = p["jobid"], p["interval"]
        if not self.store.job_exists(jobid):
            raise JobNotFound(jobid)
        resp.content_type = falcon.MEDIA_HTML
        urls = job_urls(req, self.settings, jobid)
        urls["status"] += "&workers=problems"  # the page lists only failed and stale workers
        resp.text = pages.show_page(jobid, interval, urls, overview=self.settings.list_jobs)


class Jobs(Resource):
    """Recent jobs, newest first: JSON at /progress/jobs, a page at /progress/."""

    def __init__(self, store: Store, settings: Settings, as_page: bool = False) -> None:
        super().__init__(store, settings)
        self.as_page = as_page

    def handle(self, req, resp, params):
        if not self.settings.list_jobs:
            raise falcon.HTTPNotFound(
                description="listing jobs is switched off on this server (PROGRESS_LIST_JOBS=0)"
            )
        p = parse("jobs", params, self.settings)
        limit, offset = p["limit"], p["offset"]
        total, snapshots = self.store.recent_jobs(offset, limit)
        now = time.time()
        listing = {
            "jobs": [job_row(req, self.settings, s, now) for s in snapshots],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
        if self.as_page:
            resp.content_type = falcon.MEDIA_HTML
            resp.text = pages.overview_page(listing)
        else:
            resp.media = listing


class OpenAPI:
    def __init__(self, settings: Settings) -> None:
        self.document = openapi_spec(settings)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


def job_row(req: falcon.Request, settings: Settings, snapshot: JobSnapshot, now: float) -> dict:
    summary = summarize(snapshot, now, settings.stale_after)
    return {
        "jobid": snapshot.jobid,
        "desc": snapshot.desc,
        "created": snapshot.created,
        "workers": len(snapshot.workers),
        "percent": round(summary.percent, 2),
        "failed": summary.failed,
        "stale": summary.stale,
        "show": job_urls(req, settings, snapshot.jobid)["show"],
    }


def status_document(
    snapshot: JobSnapshot, now: float, stale_after: float, include=WORKER_FILTERS["all"]
) -> dict:
    summary = summarize(snapshot, now, stale_after)
    workers = []
    for w in snapshot.workers:
        state = worker_state(w, now, stale_after)
        if include(state):
            workers.append(
                {
                    "workid": w.workid,
                    "current": w.current,
                    "total": w.total,
                    "percent": round(w.percent, 2),
                    "ok": w.ok,
                    "desc": w.desc,
                    "updated": w.updated,
                    "stale": state is WorkerState.STALE,
                    "state": state,
                }
            )
    return {
        "jobid": snapshot.jobid,
        "desc": snapshot.desc,
        "created": snapshot.created,
        "maxage": snapshot.maxage,
        "version": snapshot.version,
        "now": now,
        "stale_after": stale_after,
        "percent": round(summary.percent, 2),
        "counts": {
            "running": summary.running,
            "done": summary.done,
            "failed": summary.failed,
            "stale": summary.stale,
        },
        "last_update": summary.last_update,
        "eta_seconds": None if summary.eta_seconds is None else round(summary.eta_seconds, 1),
        "workers": workers,
    }
