"""The Python API: Job (create, attach, read status) and Worker (report progress, never raise)."""

from __future__ import annotations

import datetime
import functools
import getpass
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from . import _aio, _counters, _http, _launcher, _sender

log = logging.getLogger("progress_client")

T = TypeVar("T")
# The service refuses control characters and long texts with a 400, which would drop the whole
# update; a worker's free-form desc must not cost it its progress.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_DESC = 1024
CLOSE_WAIT = 2.0  # default bound, in seconds, on close() waiting for the last state
F = TypeVar("F", bound=Callable[..., Any])


def new_jobid() -> str:
    """A job id that is unique in practice: user:host:UTC time:random."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "user"
    host = socket.gethostname().split(".")[0] or "host"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{user}:{host}:{stamp}:{secrets.token_hex(4)}"


class Job:
    """A progress job on one service: `Job.create(...)` makes one, `Job(url, jobid)` attaches."""

    def __init__(
        self,
        base_url: str | None,
        jobid: Any,
        *,
        secret: str | None = None,
        timeout: float = 10.0,
        info: dict[str, Any] | None = None,
    ):
        """Attach to an existing job. `base_url` None means $PROGRESS_URL.

        `secret` is needed for updates if the job was created with one; `timeout` bounds each
        synchronous request (create, status, delete). `info` is the create answer, if known."""
        self.base_url = _http.base_url_from(base_url)
        self.jobid = str(jobid)
        self.secret = secret
        self.timeout = timeout
        self.info: dict[str, Any] = dict(info or {})
        self.enabled = True

    @classmethod
    def create(
        cls,
        base_url: str | None = None,
        jobid: Any = None,
        desc: str = "",
        maxage: float | None = None,
        secret: str | None = None,
        timeout: float = 30.0,
        workers: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        """Create (or overwrite) a job on the service and return it.

        `jobid` None makes a unique one. `workers` is how many workers the job expects: the
        service then counts the silent ones as 0 % and calls the job done only when that many
        have finished (an extension of the MWA API; None leaves it out). `meta`, a small
        JSON-serialisable dict, is kept with the job and returned in its status and completion
        hook, for the reduce step (the service bounds its size). The service may take
        a few seconds to answer, hence the long `timeout`. Raises ProgressError if the service
        cannot be reached or refuses: this runs in the launcher, which should know before
        starting workers."""
        base = _http.base_url_from(base_url)
        jobid = new_jobid() if jobid is None else str(jobid)
        body, _ = _http.request_json(
            base,
            "create",
            {
                "jobid": jobid,
                "desc": desc,
                "maxage": _number(maxage),
                "secret": secret,
                "workers": _number(workers),
                "meta": None if meta is None else json.dumps(meta, allow_nan=False),
            },
            timeout=timeout,
            job_endpoint=False,
        )
        return cls(base, body.get("jobid", jobid), secret=secret, timeout=timeout, info=body)

    @classmethod
    def from_env(cls, *, timeout: float = 10.0) -> Job:
        """Attach using $PROGRESS_URL, $PROGRESS_JOBID and (optional) $PROGRESS_SECRET.

        Without $PROGRESS_URL or $PROGRESS_JOBID the job is disabled: its workers report
        nothing, after one log line (logger `progress_client`, level INFO), so library code can
        report unconditionally. A $PROGRESS_URL that is not an http(s) URL raises ValueError."""
        url = os.environ.get(_http.ENV_URL, "").strip()
        jobid = os.environ.get(_http.ENV_JOBID, "")
        if not url or not jobid:
            missing = _http.ENV_URL if not url else _http.ENV_JOBID
            return cls._disabled(f"${missing} is not set")
        return cls(url, jobid, secret=os.environ.get(_http.ENV_SECRET), timeout=timeout)

    @classmethod
    def _disabled(cls, reason: str) -> Job:
        job = cls.__new__(cls)
        job.base_url, job.jobid, job.secret, job.timeout = "", "", None, 10.0
        job.info, job.enabled = {}, False
        _log_disabled_once(reason)
        return job

    def env(self, workid: Any = None) -> dict[str, str]:
        """Environment variables that let a child process call `Job.from_env()`; with
        `workid`, also $PROGRESS_WORKID and $PROGRESS_UPDATE_URL, the update URL of that worker
        (with the secret, if any), to which a script can POST JSON such as
        {"counters": {"files": [3, "red"]}} (as ARP's scripts POST to $BATCH_UPDATE_URL)."""
        env = {_http.ENV_URL: self.base_url, _http.ENV_JOBID: self.jobid}
        if self.secret is not None:
            env[_http.ENV_SECRET] = self.secret
        if workid is not None:
            env[_launcher.ENV_WORKID] = str(workid)
            env[_http.ENV_UPDATE_URL] = self.update_url(workid)
        return env

    def update_url(self, workid: Any) -> str:
        """The update URL of one worker of this job, with the secret if the job has one."""
        return _http.page_url(
            self.base_url, "update", jobid=self.jobid, workid=str(workid), secret=self.secret
        )

    @property
    def show_url(self) -> str:
        """The live progress page for people to open."""
        return self.info.get("show") or _http.page_url(self.base_url, "show", jobid=self.jobid)

    @property
    def render_url(self) -> str:
        """The PNG chart, for embedding."""
        return self.info.get("render") or _http.page_url(self.base_url, "render", jobid=self.jobid)

    @property
    def status_url(self) -> str:
        return self.info.get("status") or _http.page_url(self.base_url, "status", jobid=self.jobid)

    def show_link(self, interval: float | None = None) -> str:
        """The progress page URL, refreshing every `interval` seconds."""
        return _http.page_url(self.base_url, "show", jobid=self.jobid, interval=_number(interval))

    def status(self) -> dict[str, Any]:
        """The job's current status as the service reports it (GET /progress/status), with
        every worker (the service pages them; this follows the pages).

        Raises JobNotFound, ServiceUnavailable or RequestRejected."""
        self._require_enabled()
        body, _ = _http.full_status(self.base_url, self.jobid, timeout=self.timeout)
        return body

    def delete(self) -> None:
        """Delete the job on the service, every worker with it (sends the job's secret).

        Raises JobNotFound if the service does not know the job (never created, already
        deleted or expired), ServiceUnavailable or RequestRejected (e.g. a wrong secret)."""
        self._require_enabled()
        _http.request_json(
            self.base_url,
            "delete",
            {"jobid": self.jobid, "secret": self.secret},
            timeout=self.timeout,
        )

    def fail(self, reason: str = "", *, workid: Any = None) -> dict[str, Any]:
        """Fail the whole job (the launcher's call; a worker's `fail_job_on` makes it with its
        `workid`): the page and chart say so, `progress wait` exits 1, the completion hook says
        "failed", and every worker that asks (`fail_job_on`, `check_job`) skips its part.
        The first failure stands: failing a failed job changes nothing. Returns the failure
        that stands (by, workid, reason, at).

        Raises JobNotFound, ServiceUnavailable or RequestRejected (e.g. a wrong secret)."""
        self._require_enabled()
        body, _ = _http.request_json(
            self.base_url,
            "fail",
            {
                "jobid": self.jobid,
                "workid": None if workid is None else str(workid),
                "desc": _CONTROL.sub(" ", str(reason))[:MAX_DESC],
                "secret": self.secret,
            },
            timeout=self.timeout,
        )
        return dict(body.get("job_failed") or {})

    def failed(self) -> dict[str, Any] | None:
        """The job's failure as a whole (by, workid, reason, at) if it was failed, else None:
        for a long-running worker to ask now and then whether to go on.

        Raises JobNotFound, ServiceUnavailable or RequestRejected."""
        self._require_enabled()
        params = {"jobid": self.jobid, "workers": "none"}
        body, _ = _http.request_json(self.base_url, "status", params, timeout=self.timeout)
        return body.get("job_failed") or None

    @classmethod
    async def acreate(cls, *args: Any, **kwargs: Any) -> Job:
        """`Job.create` for asyncio code: the request runs in a thread, not in the loop."""
        return await _aio.off_loop(cls.create, *args, **kwargs)

    async def astatus(self) -> dict[str, Any]:
        """`status()` for asyncio code."""
        return await _aio.off_loop(self.status)

    async def adelete(self) -> None:
        """`delete()` for asyncio code."""
        await _aio.off_loop(self.delete)

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise _http.ProgressError(
                f"this job is disabled: ${_http.ENV_URL} or ${_http.ENV_JOBID} was not set"
            )

    def worker(
        self,
        workid: Any = None,
        total: float | None = None,
        *,
        current: float = 0,
        desc: str | None = None,
        min_interval: float = 1.0,
        timeout: float = 5.0,
        fail_job_on: type[BaseException] | Iterable[type[BaseException]] = (),
        check_job: bool = False,
    ) -> Worker:
        """A handle for one worker of this job; it reports its starting state at once.

        `workid` None means this process's id from the launcher (see `default_workid`).
        `total` None means not known yet: `track()` fills it in from the iterable's length.

        `fail_job_on`: exception classes that, raised in the `with` block, fail the whole job
        (`Job.fail`) besides this worker; the exception is still re-raised. With it, or with
        `check_job=True`, this call first asks the service whether the job has failed and
        then raises JobFailed instead of starting (nothing is reported for this worker). If
        the service cannot tell (down, unknown job), the worker starts as usual."""
        if workid is None:
            workid = _launcher.default_workid()
        fail_on = _exception_classes(fail_job_on)
        if fail_on or check_job:
            self._raise_if_failed()
        return Worker(
            self, workid, total, current=current, desc=desc,
            min_interval=min_interval, timeout=timeout, fail_job_on=fail_on,
        )  # fmt: skip

    def _raise_if_failed(self) -> None:
        if not self.enabled:
            return
        try:
            failure = self.failed()
        except _http.ProgressError as exc:  # reporting is best effort: the work goes on
            log.warning("progress_client: cannot tell whether job %r failed: %s", self.jobid, exc)
            return
        if failure:
            raise _http.JobFailed(self.jobid, failure)

    def __repr__(self) -> str:
        if not self.enabled:
            return "Job(disabled)"
        return f"Job({self.base_url!r}, {self.jobid!r})"


_disabled_logged = False


def _log_disabled_once(reason: str) -> None:
    global _disabled_logged
    if not _disabled_logged:
        _disabled_logged = True
        log.info("progress_client: %s; progress reporting is off in this process", reason)


_warned: dict[str, float] = {}


def _never_raise(method: F) -> F:
    """Reporting is best effort: a bug or bad value here must not take the worker down, nor
    flood its log when it happens in a tight loop (one line per method per minute)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            now = time.monotonic()
            if now - _warned.get(method.__name__, -_sender.LOG_EVERY) >= _sender.LOG_EVERY:
                _warned[method.__name__] = now
                log.warning("progress_client: %s() ignored an error: %r", method.__name__, exc)
            return None

    return wrapper  # type: ignore[return-value]


class Worker:
    """One worker's progress. Every method returns at once and never raises.

    The latest state is handed to a background thread that sends it at most once per
    `min_interval` seconds; as a context manager it reports completion, or failure (ok=0 with
    the exception's class name) when the block raises, and re-raises."""

    def __init__(
        self,
        job: Job,
        workid: Any,
        total: float | None,
        *,
        current: float = 0,
        desc: str | None = None,
        min_interval: float = 1.0,
        timeout: float = 5.0,
        fail_job_on: tuple[type[BaseException], ...] = (),
    ):
        self.job = job
        self.workid = str(workid)
        self.fail_job_on = fail_job_on
        self.min_interval = float(min_interval)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._current = current
        self._total = total
        # True once the caller gave the total (worker(), update() or track() with total=); a
        # total that track() filled in from len() is only a guess that a later track() extends.
        self._total_declared = total is not None
        self._desc = desc
        self._ok = True
        self._new_counters: dict[str, Any] = {}  # set since the last report
        self._key = (job.base_url, job.jobid, self.workid)
        self._label = f"job {job.jobid!r} worker {self.workid!r}"
        # A handle dropped without close() still gets its last state delivered, then forgotten.
        finalizer = weakref.finalize(self, _release, self._key)
        finalizer.atexit = False
        _never_raise(self._report)()

    @property
    def current(self) -> float:
        return self._current

    @property
    def total(self) -> float | None:
        return self._total

    @property
    def desc(self) -> str | None:
        return self._desc

    @property
    def ok(self) -> bool:
        return self._ok

    @_never_raise
    def update(
        self,
        current: float | None = None,
        desc: str | None = None,
        ok: bool | None = None,
        total: float | None = None,
    ) -> None:
        """Change any of the remembered fields (None keeps a field) and queue the new state."""
        with self._lock:
            if current is not None:
                self._current = current
            if total is not None:
                self._total = total
                self._total_declared = True
            if desc is not None:
                self._desc = desc
            if ok is not None:
                self._ok = bool(ok)
        self._report()

    @_never_raise
    def counters(self, values: Mapping[Any, Any] | None = None, /, **more: Any) -> None:
        """Set free-form counters shown beside the worker (page, chart, status): each a number,
        a string, or (value, colour) with a CSS colour name or #rrggbb, e.g.
        `w.counters({"Example Counter": (3, "red")}, stage="flag")`. Each counter keeps its
        latest value; the others stay as they are."""
        cleaned = _counters.clean_counters({**(values or {}), **more})
        with self._lock:
            self._new_counters.update(cleaned)
        self._report()

    @_never_raise
    def advance(self, n: float = 1) -> None:
        """Count `n` more things done."""
        with self._lock:
            self._current += n
        self._report()

    @_never_raise
    def done(self, desc: str | None = None) -> None:
        """Report that all the work is done (current = total; an unknown total becomes the
        current count)."""
        with self._lock:
            if self._total is None:
                self._total = self._current or 1
            self._current = self._total
            if desc is not None:
                self._desc = desc
        self._report()

    @_never_raise
    def fail(self, desc: str | None = None) -> None:
        """Report a problem: the bar turns red (ok=0)."""
        with self._lock:
            self._ok = False
            if desc is not None:
                self._desc = desc
        self._report()

    def track(self, iterable: Iterable[T], total: float | None = None) -> Iterator[T]:
        """Yield the items of `iterable`, advancing by one per item (like tqdm).

        A `total` given here sets the handle's total to the current count plus it. Otherwise a
        total given earlier (to `worker()`, `update()` or `track()`) stays; only when there is
        none does len(iterable), if it has one, fill it in, or extend the total an earlier
        track() filled in, so that tracking two lists one after the other counts both."""
        if total is not None:
            self.update(total=_safe_add(self._current, total))
        elif not self._total_declared:
            self._extend_total_by_len(iterable)
        for item in iterable:
            yield item
            self.advance()

    @_never_raise
    def _extend_total_by_len(self, iterable: Iterable[Any]) -> None:
        try:
            length = len(iterable)  # type: ignore[arg-type]
        except Exception:
            return
        with self._lock:
            self._total = _safe_add(self._current, length)
        self._report()

    @_never_raise
    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Send the last state now, without waiting for `min_interval`.

        Waits up to `timeout` seconds for it to be delivered, since the process may be about to
        end in a way that skips the exit flush (multiprocessing children, os._exit), but does
        not wait at all while the service is known to be failing: then the state is sent when
        the service recovers, or by the flush at exit."""
        self._report(urgent=True, close=True)
        if timeout > 0 and self.job.enabled:
            _sender.get_sender().flush(timeout, [self._key], unless_down=True)

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver this worker's queued state now; True if nothing is left queued."""
        if not self.job.enabled:
            return True
        try:
            return _sender.get_sender().flush(timeout, [self._key])
        except Exception as exc:
            log.warning("progress_client: flush() ignored an error: %r", exc)
            return False

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._record_outcome(exc_type, exc)
        self.close()
        return False

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # Queuing the outcome is a dict assignment; waiting for delivery happens in a thread,
        # so the event loop keeps running even when the service is slow or down.
        self._record_outcome(exc_type, exc)
        await self.aclose()
        return False

    async def aclose(self, timeout: float = CLOSE_WAIT) -> None:
        """`close()` for asyncio code: the wait for delivery runs in a thread."""
        await _aio.off_loop(self.close, timeout)

    def _record_outcome(
        self, exc_type: type[BaseException] | None, exc: BaseException | None
    ) -> None:
        if exc_type is None or _clean_exit(exc):
            if self._ok:
                self.done()
        else:
            self.fail(exc_type.__name__)
            if self.fail_job_on and isinstance(exc, self.fail_job_on):
                self._fail_job(exc_type, exc)

    @_never_raise
    def _fail_job(self, exc_type: type[BaseException], exc: BaseException | None) -> None:
        """Fail the whole job for an exception listed in `fail_job_on`, before the block's
        exception propagates, so that the next part to start already knows."""
        text = str(exc) if exc is not None else ""
        reason = f"{exc_type.__name__}: {text}" if text else exc_type.__name__
        self.job.fail(reason, workid=self.workid)

    def __repr__(self) -> str:
        return f"<Worker {self.workid!r} of {self.job!r}: {self._current}/{self._total}>"

    def _report(self, urgent: bool = False, close: bool = False) -> None:
        if not self.job.enabled:
            return
        with self._lock:
            current, total, desc = self._current, self._total, self._desc
            if total is None:  # the service needs a total: show 0 %, and the count as text
                current, total = 0, 1
                desc = desc if desc is not None else f"{_number(self._current)} so far"
            params: dict[str, Any] = {
                "jobid": self.job.jobid,
                "workid": self.workid,
                "current": _number(current),
                "total": _number(total),
                "ok": "1" if self._ok else "0",
            }
            if desc is not None:
                params["desc"] = _CONTROL.sub(" ", str(desc))[:MAX_DESC]
            if self.job.secret is not None:
                params["secret"] = self.job.secret
            if self._new_counters:  # sent once: the sender keeps them until delivered
                params["counters"], self._new_counters = self._new_counters, {}
        _sender.get_sender().submit(
            self._key,
            self.job.base_url,
            self._label,
            params,
            min_interval=self.min_interval,
            timeout=self.timeout,
            urgent=urgent,
            close=close,
        )


def _release(key: Any) -> None:
    try:
        _sender.get_sender().release(key)
    except Exception:
        pass


def _exception_classes(classes: Any) -> tuple[type[BaseException], ...]:
    """`fail_job_on` as isinstance() takes it: one class, or any iterable of them."""
    if isinstance(classes, type):
        classes = (classes,)
    classes = tuple(classes or ())
    for c in classes:
        if not (isinstance(c, type) and issubclass(c, BaseException)):
            raise TypeError(f"fail_job_on takes exception classes, not {c!r}")
    return classes


def _clean_exit(exc: BaseException | None) -> bool:
    """sys.exit(0) inside the block is a normal end, not a failure."""
    return isinstance(exc, SystemExit) and exc.code in (0, None)


def _safe_add(a: Any, b: Any) -> Any:
    try:
        return a + b
    except TypeError:
        return b


def _number(value: Any) -> str | None:
    """Numbers as the service parses them: '5' for 5 and 5.0, repr for other floats."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
