"""HTTP plumbing shared by the API, the background sender and the CLI: URLs, errors, requests."""

from __future__ import annotations

import os
import random
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

import requests
import urllib3

ENV_URL = "PROGRESS_URL"
ENV_JOBID = "PROGRESS_JOBID"
ENV_SECRET = "PROGRESS_SECRET"
ENV_UPDATE_URL = "PROGRESS_UPDATE_URL"  # one worker's update URL (Job.env, progress run)

# Outcome of one HTTP attempt, as the retry logic sees it.
OK = "ok"
STATUS_PAGE = 10_000  # workers per status request, the most the service gives
RETRY = "retry"  # connection error, timeout, 5xx, 429: the service may recover
REJECT = "reject"  # any other 4xx: sending the same thing again cannot help

_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


class ProgressError(Exception):
    """Base class of every error this package raises (never raised by worker reporting)."""


class ServiceUnavailable(ProgressError):
    """The service could not be reached, timed out, or answered 5xx/429."""


class RequestRejected(ProgressError):
    """The service refused the request with a 4xx answer (bad input, wrong secret, ...)."""

    def __init__(self, message: str, status: int, title: str = "", description: str = ""):
        super().__init__(message)
        self.status = status
        self.title = title
        self.description = description


class JobNotFound(RequestRejected):
    """The service does not know this job id (never created, or expired)."""


class JobFailed(ProgressError):
    """The job was failed as a whole (by a worker's `fail_job_on`, or `Job.fail()`): raised by
    `job.worker(..., fail_job_on=...)` or `check_job=True` instead of starting the part.
    `failure` is the service's record: by ("worker" or "launcher"), workid, reason, at."""

    def __init__(self, jobid: str, failure: dict[str, Any]):
        self.jobid = jobid
        self.failure = dict(failure)
        self.by = str(failure.get("by") or "")
        self.workid = failure.get("workid")
        self.reason = str(failure.get("reason") or "")
        self.at = failure.get("at")
        who = f"worker {self.workid!r}" if self.workid is not None else "its launcher"
        why = f": {self.reason}" if self.reason else ""
        super().__init__(f"job {jobid!r} was failed by {who}{why}")


def base_url_from(url: str | None) -> str:
    """The service base URL from `url` or $PROGRESS_URL, without a trailing slash."""
    url = (url if url is not None else os.environ.get(ENV_URL, "")).strip()
    if not url:
        raise ValueError(f"no progress service URL given and ${ENV_URL} is not set")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


def endpoint(base_url: str, name: str) -> str:
    return f"{base_url}/progress/{name}"


def page_url(base_url: str, name: str, **params: Any) -> str:
    """An absolute URL with its query string encoded (ids may hold spaces, '+', '/', unicode)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{endpoint(base_url, name)}?{query}"


def classify(status: int) -> str:
    if 200 <= status < 300:
        return OK
    if status == 429 or status >= 500:
        return RETRY
    return REJECT


def describe_exception(exc: BaseException, timeout: float) -> str:
    """One short line for a requests exception (its own str() is a paragraph of repr)."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"connection timed out after {timeout:g}s"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.ConnectionError):
        found = _ERRNO_TEXT.search(str(exc))
        return found.group(1).strip() if found else "connection failed"
    return type(exc).__name__


def error_detail(resp: requests.Response) -> tuple[str, str]:
    """(title, description) from the service's JSON error body, or the HTTP reason."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("title") or resp.reason or ""), str(body.get("description") or "")
    return str(resp.reason or ""), ""


def rejection_message(status: int, title: str, description: str) -> str:
    text = f"HTTP {status}"
    if title and not title.startswith(str(status)):
        text += f" {title}"
    elif title:
        text = title
    return f"{text}: {description}" if description else text


def retry_after(resp: requests.Response | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta form only), capped at a minute."""
    if resp is None:
        return None
    value = resp.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return None


def backoff(failures: int, hint: float | None = None, cap: float = 30.0) -> float:
    """Delay before the next attempt after `failures` failures in a row, with jitter."""
    if hint is not None:
        return hint
    delay = min(cap, 0.5 * 2 ** max(failures - 1, 0))
    return delay * random.uniform(0.8, 1.2)


def send(session: Any, url: str, params: Mapping[str, Any], timeout: float) -> requests.Response:
    """One request; a secret goes in a POST form body so it never lands in access logs, and
    counters in a JSON body (the only body that can carry them)."""
    if "counters" in params:
        return session.post(url, json=dict(params), timeout=timeout)
    if "secret" in params:
        return session.post(url, data=dict(params), timeout=timeout)
    return session.get(url, params=dict(params), timeout=timeout)


def server_time(resp: requests.Response) -> float:
    """The service's clock from its Date header (ages stay right when clocks disagree)."""
    try:
        return parsedate_to_datetime(resp.headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError, IndexError):
        return time.time()


def request_json(
    base_url: str,
    name: str,
    params: Mapping[str, Any],
    *,
    timeout: float = 10.0,
    retries: int = 2,
    job_endpoint: bool = True,
) -> tuple[dict[str, Any], requests.Response]:
    """Call one endpoint and return (JSON body, response); raise a ProgressError on failure.

    Connection errors, timeouts, 5xx and 429 are retried `retries` times with backoff.
    A 404 from a job endpoint raises JobNotFound, except for a delete retried after an attempt
    that may have reached the service: that attempt deleted the job, only its answer was lost."""
    url = endpoint(base_url, name)
    params = {k: v for k, v in params.items() if v is not None}
    failures = 0
    maybe_done = False  # an earlier attempt may have been carried out
    with requests.Session() as session:
        while True:
            resp = None
            try:
                resp = send(session, url, params, timeout)
            except requests.RequestException as exc:
                maybe_done = maybe_done or _may_have_arrived(exc)
                error: ProgressError = ServiceUnavailable(
                    f"cannot reach {url}: {describe_exception(exc, timeout)}"
                )
            else:
                kind = classify(resp.status_code)
                if kind == OK:
                    return _json_body(resp, url), resp
                if name == "delete" and resp.status_code == 404 and maybe_done:
                    return {"jobid": params.get("jobid"), "deleted": True}, resp
                # A 503 is the service refusing before it acts (Redis down or full): not done.
                maybe_done = maybe_done or resp.status_code in (500, 502, 504)
                title, description = error_detail(resp)
                message = rejection_message(resp.status_code, title, description)
                if kind == REJECT:
                    cls = (
                        JobNotFound if job_endpoint and resp.status_code == 404 else RequestRejected
                    )
                    raise cls(message, resp.status_code, title, description)
                error = ServiceUnavailable(f"{url}: {message}")
            failures += 1
            if failures > retries:
                raise error
            time.sleep(backoff(failures, retry_after(resp), cap=5.0))


def _may_have_arrived(exc: requests.RequestException) -> bool:
    """False only when the request surely never reached the service (no connection made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _json_body(resp: requests.Response, url: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProgressError(f"{url} did not answer with a JSON object: is this a progress service?")
    return body


def full_status(
    base_url: str, jobid: str, *, timeout: float = 10.0
) -> tuple[dict[str, Any], requests.Response]:
    """A job's status with every worker: the service lists them a page at a time (in natural
    order of their ids, `next_after` naming where the next page starts), so follow the pages."""
    params: dict[str, Any] = {"jobid": jobid, "workers": "all", "limit": STATUS_PAGE}
    body, resp = request_json(base_url, "status", params, timeout=timeout)
    workers = list(body.get("workers") or [])
    while body.get("next_after"):
        params["after"] = body["next_after"]
        body, resp = request_json(base_url, "status", params, timeout=timeout)
        workers += body.get("workers") or []
    return {**body, "workers": workers, "next_after": None, "next": None}, resp
