"""HTTP resources: validate, hand over to the pipeline or read the store, answer."""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any
from urllib.parse import urlencode

import falcon

from api import pages
from api.chart_cache import ChartCache
from api.counters import parse_counters
from api.openapi import openapi_spec
from api.params import canonical_id, parse, read_json_updates, read_params
from api.ratelimit import RateLimiter
from api.read_budget import RowBudget
from domain.counters import Counter
from domain.hooks import job_mac, stored_hook
from domain.lifetimes import OVERSTAYING_NAMED, SLOWEST
from domain.model import (
    AcceptOutcome,
    CreateOutcome,
    DeleteOutcome,
    FailOutcome,
    JobFailure,
    JobInfo,
    WorkerRow,
    WorkerState,
    natural_key,
    worker_state,
)
from renderer.lifetimes import lifetimes_png
from tasks.pipeline import Pipeline, WorkerReport
from tasks.settings import Settings
from tasks.store import Store

# Failed and stale workers the show page lists, of each (it counts them all): enough to see
# what went wrong at a glance, and a poll that costs the same for 10 or 100,000 workers.
PAGE_PROBLEMS = 25


class JobError(Exception):
    def __init__(self, jobid: str) -> None:
        super().__init__(jobid)
        self.jobid = jobid


class JobNotFound(JobError):
    """No job has this id: never created, or expired."""


class ServiceFull(falcon.HTTPServiceUnavailable):
    """A storage bound is reached: the client should retry later, as it says."""

    def __init__(self, description: str) -> None:
        super().__init__(title="Service full", description=description, retry_after=10)


class QuotaReached(falcon.HTTPTooManyRequests):
    """A client address holds as much as one may; it makes room by deleting its jobs (or as
    they expire)."""

    def __init__(self, description: str) -> None:
        super().__init__(title="Quota reached", description=description, retry_after=60)


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
        jobid = params.get("jobid")
        req.context.jobid = jobid and canonical_id(jobid)  # for the request log, as stored
        self.handle(req, resp, params)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.on_get(req, resp)

    def handle(self, req: falcon.Request, resp: falcon.Response, params: dict[str, str]) -> None:
        raise NotImplementedError


class JobLifecycle(Resource):
    """Create and delete: they change a job through the pipeline, and drop the chart this web
    process keeps of it (ChartCache), so that the change shows at once on this connection."""

    def __init__(
        self, store: Store, settings: Settings, pipeline: Pipeline, charts: ChartCache
    ) -> None:
        super().__init__(store, settings)
        self.pipeline = pipeline
        self.charts = charts


class Create(JobLifecycle):
    def __init__(
        self, store: Store, settings: Settings, pipeline: Pipeline, charts: ChartCache
    ) -> None:
        super().__init__(store, settings, pipeline, charts)
        self.limiter = RateLimiter(
            settings.create_rate_limit,
            burst=30 * settings.create_rate_limit,
            what="creates",
            setting="PROGRESS_CREATE_RATE_LIMIT",
        )

    def handle(self, req, resp, params):
        s = self.settings
        p = parse("create", params, s)
        jobid, desc, maxage = p["jobid"], p["desc"], p["maxage"]
        hook = _hook(jobid, p["secret"], p["notify"])
        self.limiter.charge(req.remote_addr)
        outcome, now = self.pipeline.create_job(
            jobid, desc, maxage, p["secret"], hook, p["workers"], p["meta"], req.remote_addr
        )
        if outcome == CreateOutcome.WRONG_SECRET:
            raise WrongSecret(jobid)
        if outcome == CreateOutcome.TOO_MANY_JOBS:
            raise ServiceFull(
                f"the service holds {s.max_jobs} jobs, the most it may (PROGRESS_MAX_JOBS); "
                "older jobs make room as they expire"
            )
        if outcome == CreateOutcome.OWNER_QUOTA:
            raise QuotaReached(
                f"address {req.remote_addr} holds {s.max_jobs_per_address} jobs, the most one "
                "address may (PROGRESS_MAX_JOBS_PER_ADDRESS); delete some, or wait for them "
                "to expire"
            )
        self.charts.forget(jobid)  # a re-created job shows its placeholder at once
        resp.media = {
            "jobid": jobid,
            "desc": desc,
            "maxage": maxage,
            "created": now,
            "workers_expected": p["workers"],  # as in status; None when not given
            "meta": json.loads(p["meta"]) if p["meta"] else None,  # as in status
            **job_urls(req, s, jobid),
        }


def _hook(jobid: str, secret: str, url: str) -> str:
    """What the job keeps of its completion hook ('' for none). Only a job with a secret may
    have one: its document's job_mac, keyed by the secret, is what tells the receiver that the
    job is its owner's and not anyone's who chose the same id (domain.hooks.job_mac)."""
    if not url:
        return ""
    if not secret:
        raise falcon.HTTPInvalidParam(
            "a completion hook is sent only for a job created with a secret: give 'secret' too "
            "(the hook's document then carries job_mac, HMAC-SHA256 of the jobid keyed by the "
            "secret, by which the receiver knows the job is its owner's)",
            "notify",
        )
    return stored_hook(url, job_mac(secret, jobid))


class Delete(JobLifecycle):
    """Delete a job now, with all it holds; with its secret if it has one. HTTP DELETE too."""

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.on_get(req, resp)

    def handle(self, req, resp, params):
        p = parse("delete", params, self.settings)
        outcome = self.pipeline.delete_job(p["jobid"], p["secret"])
        if outcome == DeleteOutcome.UNKNOWN_JOB:
            raise JobNotFound(p["jobid"])
        if outcome == DeleteOutcome.WRONG_SECRET:
            raise WrongSecret(p["jobid"])
        self.charts.forget(p["jobid"])
        resp.media = {"jobid": p["jobid"], "deleted": True}


class Fail(JobLifecycle):
    """Fail a job as a whole, by one of its workers (workid) or its launcher: the first failure
    stands, and every worker that asks is told to skip its part (the client's JobFailed)."""

    def handle(self, req, resp, params):
        p = parse("fail", params, self.settings)
        jobid, workid = p["jobid"], p["workid"] or None
        failure = JobFailure("worker" if workid else "launcher", workid, p["desc"], time.time())
        failed = self.pipeline.fail_job(jobid, failure, p["secret"])
        if failed.outcome == FailOutcome.UNKNOWN_JOB:
            raise JobNotFound(jobid)
        if failed.outcome == FailOutcome.WRONG_SECRET:
            raise WrongSecret(jobid)
        self.charts.forget(jobid)
        resp.media = {
            "jobid": jobid,
            "job_failed": failed.failure.as_dict(),
            "already_failed": failed.outcome == FailOutcome.ALREADY_FAILED,
        }


class Update(Resource):
    """One worker's state from a query or form, or a JSON object (which may carry counters);
    or, as a POST of a JSON array of such objects, many at once (all accepted, or none)."""

    def __init__(self, store: Store, settings: Settings, pipeline: Pipeline) -> None:
        super().__init__(store, settings)
        self.pipeline = pipeline
        self.limiter = RateLimiter(settings.update_rate_limit)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_type and req.content_type.startswith(falcon.MEDIA_JSON):
            updates, batch = read_json_updates(req, self.settings)
            self.limiter.charge(req.remote_addr, len(updates))
            self.accept(resp, updates, all_or_nothing=batch, validate=self.json_report)
        else:
            self.on_get(req, resp)

    def handle(self, req, resp, params):
        self.limiter.charge(req.remote_addr)
        self.accept(resp, [params], all_or_nothing=False, validate=self.report)

    def report(self, params: dict[str, Any], counters: tuple[Counter, ...] = ()) -> WorkerReport:
        report = WorkerReport(**parse("update", params, self.settings), counters=counters)
        if not math.isfinite(100 * report.current / report.total):
            raise falcon.HTTPInvalidParam(
                "current / total is too large to be a percentage", "total"
            )
        return report

    def json_report(self, params: dict[str, Any]) -> WorkerReport:
        """An update from a JSON body, which may carry counters (only a JSON body can)."""
        counters = parse_counters(params.get("counters"), self.settings)
        params.pop("counters", None)  # the other fields are text, as a query's
        if counters and "current" not in params and "total" not in params:
            return self.counters_only(params, counters)
        return self.report(params, counters)

    def counters_only(self, params: dict[str, Any], counters: tuple[Counter, ...]) -> WorkerReport:
        """An update of counters alone: the worker's progress stays as it is (a worker not seen
        before shows as running, with no progress yet)."""
        for name in ("ok", "desc"):
            if name in params:
                raise falcon.HTTPInvalidParam(
                    "it is given with current and total only (counters alone keep the "
                    "worker's progress as it is)",
                    name,
                )
        p = parse("update", {**params, "current": "0", "total": "1"}, self.settings)
        return WorkerReport(
            p["jobid"], p["workid"], 0.0, 0.0, True, "", p["secret"], counters, progress=False
        )

    def accept(
        self, resp, params_list: list[dict[str, Any]], all_or_nothing: bool, validate
    ) -> None:
        reports = [
            _for_item(i, len(params_list), validate, params) for i, params in enumerate(params_list)
        ]
        statuses = self.pipeline.accept(reports, all_or_nothing)
        for report, status in zip(reports, statuses):
            if status == AcceptOutcome.UNKNOWN_JOB:
                raise JobNotFound(report.jobid)
            if status == AcceptOutcome.WRONG_SECRET:
                raise WrongSecret(report.jobid)
            if status == AcceptOutcome.BACKLOG:
                raise ServiceFull(
                    f"more than {self.settings.max_inbox} updates wait to be applied "
                    "(PROGRESS_MAX_INBOX): the service is behind; try again shortly"
                )
            if status == AcceptOutcome.STORAGE_FULL:
                raise ServiceFull(
                    f"the service holds {self.settings.max_worker_rows} worker rows, the most "
                    "it may (PROGRESS_MAX_WORKER_ROWS); known workers can still report"
                )
            if status == AcceptOutcome.OWNER_QUOTA:
                raise QuotaReached(
                    f"the address that created job {report.jobid!r} holds "
                    f"{self.settings.max_worker_rows_per_address} worker rows, the most one "
                    "address may (PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS); known workers can "
                    "still report"
                )
            if status == AcceptOutcome.JOB_TOO_LARGE:
                raise falcon.HTTPConflict(
                    title="Job too large",
                    description=f"job {report.jobid!r} would hold more than "
                    f"{self.settings.max_job_bytes} bytes of worker ids and rows, the most a "
                    "job may (PROGRESS_MAX_JOB_BYTES); shorter ids or descriptions fit more "
                    "workers",
                )
            if status == AcceptOutcome.TOO_MANY_COUNTERS:
                raise falcon.HTTPInvalidParam(
                    f"worker {report.workid!r} of job {report.jobid!r} would have more than "
                    f"{self.settings.max_counters} counters, the most a worker may "
                    "(PROGRESS_MAX_COUNTERS); nothing was stored",
                    "counters",
                )
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


class Status(Resource):
    """A job's summary, read from what the apply step keeps (the same few fields for 10 or
    100,000 workers), with no workers, its problems (found through indexes), or a page of all
    its workers in natural order.

    Big pages are charged to the client address's budget of rows (api/read_budget.py)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(store, settings)
        self.rows = RowBudget(settings)

    def handle(self, req, resp, params):
        p = parse("status", params, self.settings)
        jobid, which, limit = p["jobid"], p["workers"], p["limit"]
        now, stale_after = time.time(), self.settings.stale_after
        info = self.store.job_info(jobid, now, stale_after)
        if info is None:
            raise JobNotFound(jobid)
        self.rows.charge(req.remote_addr, which, limit, info)
        document = status_document(info, now, stale_after)
        document["lifetimes"] = self.store.lifetimes(jobid, SLOWEST, OVERSTAYING_NAMED).as_dict()
        if which == "problems":
            failed, stale = self.store.problems(jobid, now, stale_after, limit)
            workers = sorted(failed, key=_natural) + sorted(stale, key=_natural)
            document["workers"] = [worker_entry(w, now, stale_after) for w in workers]
        elif which == "all":
            rows, next_after = self.store.worker_page(jobid, p["after"] or None, limit)
            document["workers"] = [worker_entry(w, now, stale_after) for w in rows]
            document["next_after"] = next_after
            document["next"] = next_after and (
                job_urls(req, self.settings, jobid)["status"]
                + "&"
                + urlencode({"limit": limit, "after": next_after})
            )
        resp.media = document


def _natural(w: WorkerRow) -> tuple:
    return natural_key(w.workid)


class Render(Resource):
    def __init__(self, store: Store, settings: Settings, charts: ChartCache) -> None:
        super().__init__(store, settings)
        self.charts = charts

    def handle(self, req, resp, params):
        p = parse("render", params, self.settings)
        jobid = p["jobid"]
        if p["view"] == "lifetimes":
            self.send_lifetimes(req, resp, jobid)
            return
        chart = self.charts.get(jobid)
        if chart is None:
            raise JobNotFound(jobid)
        _send_png(req, resp, chart.etag, lambda: chart.png)

    def send_lifetimes(self, req, resp, jobid: str) -> None:
        """The lifetimes histogram, drawn on request (with Pillow, in milliseconds) unless the
        browser holds the one of these very durations: nothing is drawn or stored for the jobs
        nobody looks at this way, and an open page's polls cost a read and a 304."""
        found = self.store.finished_durations(jobid)
        if found is None:
            raise JobNotFound(jobid)
        desc, finished = found
        digest = hashlib.sha256(repr((jobid, desc, finished)).encode()).hexdigest()[:32]
        _send_png(req, resp, f"lifetimes-{digest}", lambda: lifetimes_png(jobid, desc, finished))


def _send_png(req, resp, etag: str, draw) -> None:
    """A PNG with its ETag, or a 304 when If-None-Match names it (then `draw` is not called)."""
    resp.cache_control = ["no-cache"]
    resp.etag = etag
    if req.if_none_match and any(tag == etag for tag in req.if_none_match):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = "image/png"
    resp.data = draw()


class Show(Resource):
    def handle(self, req, resp, params):
        p = parse("show", params, self.settings)
        jobid, interval = p["jobid"], p["interval"]
        title = self.store.job_title(jobid)
        if title is None:
            raise JobNotFound(jobid)
        resp.content_type = falcon.MEDIA_HTML
        urls = job_urls(req, self.settings, jobid)
        # A small job's page reads all its workers, for their counters (pages.PAGE_WORKERS);
        # a larger one's lists the first failed and stale workers only, and counts them all.
        urls["status_all"] = urls["status"] + f"&workers=all&limit={pages.PAGE_WORKERS}"
        urls["status"] += f"&workers=problems&limit={PAGE_PROBLEMS}"
        resp.text = pages.show_page(
            jobid, title[1], interval, urls, overview=self.settings.list_jobs
        )


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
        now = time.time()
        total, infos = self.store.recent_jobs(offset, limit, now, self.settings.stale_after)
        listing = {
            "jobs": [job_row(req, self.settings, info) for info in infos],
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


def job_row(req: falcon.Request, settings: Settings, info: JobInfo) -> dict:
    return {
        "jobid": info.jobid,
        "desc": info.desc,
        "created": info.created,
        "workers": info.workers,
        "percent": round(info.summary.percent, 2),
        "failed": info.summary.failed,
        "stale": info.summary.stale,
        "show": job_urls(req, settings, info.jobid)["show"],
    }


def worker_entry(w: WorkerRow, now: float, stale_after: float) -> dict:
    state = worker_state(w, now, stale_after)
    return {
        "workid": w.workid,
        "current": w.current,
        "total": w.total,
        "percent": round(w.percent, 2),
        "ok": w.ok,
        "desc": w.desc,
        "updated": w.updated,
        "stale": state is WorkerState.STALE,
        "state": state,
        **lifetime_fields(w),
        "counters": [counter_entry(c) for c in w.counters],
    }


def counter_entry(c: Counter) -> dict:
    """A counter as status gives it: its value as posted, its colour (null: the default)."""
    return {"name": c.name, "value": c.value, "colour": c.colour or None}


def lifetime_fields(w: WorkerRow) -> dict:
    """When the worker started and finished, on the service's clock (null: not known, or not
    yet), and the seconds between (null until it finishes)."""
    return {"started": w.started, "finished": w.finished, "duration": w.duration}


def status_document(info: JobInfo, now: float, stale_after: float) -> dict:
    summary = info.summary
    return {
        "jobid": info.jobid,
        "desc": info.desc,
        "created": info.created,
        "maxage": info.maxage,
        "version": info.version,
        "now": now,
        "stale_after": stale_after,
        "percent": round(summary.percent, 2),
        "workers_reported": info.workers,
        "workers_expected": info.expected,
        "workers_silent": summary.silent,
        "complete": summary.complete and info.job_failed is None,
        "counts": {
            "running": summary.running,
            "done": summary.done,
            "failed": summary.failed,
            "stale": summary.stale,
        },
        "last_update": summary.last_update,
        "eta_seconds": None if summary.eta_seconds is None else round(summary.eta_seconds, 1),
        **job_outcome_fields(info),
        "workers": [],
    }


def job_outcome_fields(info: JobInfo) -> dict:
    """Whether the job failed as a whole (/progress/fail), and what the launcher gave create's
    meta: null when not."""
    return {
        "job_failed": info.job_failed.as_dict() if info.job_failed else None,
        "meta": info.meta,
    }
