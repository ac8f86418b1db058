"""The background sender: delivers worker reports off the caller's thread, coalesced and retried.

One daemon thread per process serves every worker handle. A handle only stores its latest state
here (a dict assignment under a lock) and returns; the thread sends, for each worker, the newest
state it has, at most once per the worker's `min_interval`. The states of several workers due at
the same time go to their service together, in one batched POST (a JSON array). Failures cost
the worker a rate-limited log line: the state stays queued and is retried with backoff (per
service, so a dead service is not hammered once per worker), a newer state simply replaces it,
and a 4xx answer other than 429 drops it. At interpreter exit the queue is flushed with a
bounded wait.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Hashable, Iterable

import requests

from . import _http

log = logging.getLogger("progress_client")

ENV_FLUSH_TIMEOUT = "PROGRESS_FLUSH_TIMEOUT"
DEFAULT_EXIT_FLUSH = 5.0
LOG_EVERY = 60.0  # seconds between two log lines about the same problem
# States per batched POST: with the longest ids and descs the service takes, 100 stay well under
# its default 1 MiB body limit.
MAX_BATCH = 100

_INF = float("inf")
_PERMANENT = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


class _Service:
    """Health of one base URL: consecutive failures and when to try again."""

    __slots__ = ("base_url", "failures", "retry_at", "failed_gen", "batches")

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.failures = 0
        self.retry_at = 0.0
        self.failed_gen = -1  # attempt number of the last failure
        # False once a batch was refused while its states, sent one by one, were accepted:
        # a service that speaks only the MWA API.
        self.batches = True


class _Entry:
    """The queue slot of one worker: its newest unsent state and its send schedule."""

    __slots__ = (
        "key", "service", "url", "label", "pending", "seq", "min_interval", "timeout",
        "last_sent", "urgent", "closed",
    )  # fmt: skip

    def __init__(self, key: Hashable, service: _Service, url: str, label: str):
        self.key = key
        self.service = service
        self.url = url
        self.label = label
        self.pending: dict[str, Any] | None = None
        self.seq = 0
        self.min_interval = 1.0
        self.timeout = 5.0
        self.last_sent = -_INF
        self.urgent = False
        self.closed = False

    def due(self) -> float:
        """Monotonic time at which the pending state may go out."""
        earliest = self.service.retry_at
        if not self.urgent:
            earliest = max(earliest, self.last_sent + self.min_interval)
        return earliest


class _RateLimitedLog:
    """At most one warning per problem per LOG_EVERY seconds, counting what it held back."""

    def __init__(self) -> None:
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def warning(self, problem: Hashable, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(problem)
        if last is not None and now - last < LOG_EVERY:
            self._held[problem] = self._held.get(problem, 0) + 1
            return
        held = self._held.pop(problem, 0)
        if held:
            message += f" ({held} similar message(s) suppressed)"
        self._last[problem] = now
        log.warning("%s", message)

    def forget(self, problem: Hashable) -> None:
        self._last.pop(problem, None)
        self._held.pop(problem, None)


class Sender:
    """A queue of the latest state per worker, drained by one daemon thread."""

    def __init__(self) -> None:
        # Re-entrant: a handle's weakref finalizer calls release() from whichever thread the
        # garbage collector happens to run in, possibly one already holding this lock.
        self._cond = threading.Condition(threading.RLock())
        self._entries: dict[Hashable, _Entry] = {}
        self._services: dict[str, _Service] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_wake = _INF  # when the idle thread will wake by itself
        self._attempts = 0
        self._prune = False  # some released entries may be ready to be forgotten
        self._log = _RateLimitedLog()
        # (base URL, jobid) of jobs the service said it does not know (404): each is logged once,
        # and again only if it comes back (re-created) and goes once more.
        self._gone: set[tuple[str, str]] = set()

    # -- called from worker threads: cheap, never blocking on the network ------------------

    def submit(
        self,
        key: Hashable,
        base_url: str,
        label: str,
        params: dict[str, Any],
        *,
        min_interval: float,
        timeout: float,
        urgent: bool = False,
        close: bool = False,
    ) -> None:
        with self._cond:
            entry = self._entries.get(key)
            if entry is None:
                service = self._services.get(base_url)
                if service is None:
                    service = self._services[base_url] = _Service(base_url)
                entry = _Entry(key, service, _http.endpoint(base_url, "update"), label)
                self._entries[key] = entry
            if entry.pending and "counters" in entry.pending:  # not delivered yet: keep them
                params = {
                    **params,
                    "counters": {**entry.pending["counters"], **params.get("counters", {})},
                }
            entry.pending = params
            entry.seq += 1
            entry.min_interval = min_interval
            entry.timeout = timeout
            entry.urgent = entry.urgent or urgent
            entry.closed = close
            self._start()
            # Waking the thread for a state it may not send yet would only burn CPU.
            if entry.due() < self._next_wake:
                self._cond.notify_all()

    def release(self, key: Hashable) -> None:
        """The handle is gone: forget the worker once its last state is out."""
        with self._cond:
            entry = self._entries.get(key)
            if entry is not None:
                entry.closed = True  # no dict change here: a scan may be under way
                self._prune = True
                self._cond.notify_all()

    def flush(
        self,
        timeout: float,
        keys: Iterable[Hashable] | None = None,
        *,
        unless_down: bool = False,
    ) -> bool:
        """Send queued states now; wait until each is out, dropped, or has failed once more.

        Returns True when none of them is left queued. Never waits longer than `timeout`.
        With `unless_down`, states for a service that is failing already are sent when it
        recovers, without waiting and without an extra attempt now."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            wanted = set(keys) if keys is not None else None
            targets = [
                e
                for e in self._entries.values()
                if e.pending is not None and (wanted is None or e.key in wanted)
            ]
            for entry in targets:
                entry.urgent = True
            if unless_down:
                targets = [e for e in targets if not e.service.failures]
            if not targets:
                return True
            started = self._attempts
            for entry in targets:
                entry.service.retry_at = 0.0  # one more try now, even while backing off
            self._start()
            self._cond.notify_all()
            while True:
                unsettled = [
                    e for e in targets if e.pending is not None and e.service.failed_gen <= started
                ]
                if not unsettled or self._thread is None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return all(e.pending is None for e in targets)

    def queued(self) -> int:
        with self._cond:
            return sum(1 for e in self._entries.values() if e.pending is not None)

    def stop(self) -> None:
        """End the thread (tests; queued states are abandoned)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(
                target=self._run, name="progress-client-sender", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while True:
            try:
                picked = self._next()
                if picked is None:
                    return
                if len(picked) == 1:
                    self._deliver(session, *picked[0])
                else:
                    self._deliver_batch(session, picked)
            except Exception:  # this thread must outlive any bug; the worker must not notice
                log.exception("progress_client: unexpected error in the sender thread")
                time.sleep(1.0)

    def _next(self) -> list[tuple] | None:
        """Block until some worker's state is due; claim it, with the other states due for the
        same service (up to MAX_BATCH)."""
        with self._cond:
            while not self._stopping:
                if self._prune:
                    self._forget_released()
                now = time.monotonic()
                best: _Entry | None = None
                best_due = _INF
                for entry in self._entries.values():
                    if entry.pending is not None:
                        due = entry.due()
                        if due < best_due:
                            best, best_due = entry, due
                if best is not None and best_due <= now:
                    self._next_wake = -_INF  # busy: it looks at the queue again when done
                    return [(e, e.pending, e.seq) for e in self._claim(best, now)]
                self._next_wake = best_due
                self._cond.wait(None if best_due == _INF else best_due - now)
            self._thread = None
            self._cond.notify_all()
            return None

    def _claim(self, first: _Entry, now: float) -> list[_Entry]:
        claimed = [first]
        if first.service.batches:
            for entry in self._entries.values():
                if len(claimed) >= MAX_BATCH:
                    break
                if (
                    entry is not first
                    and entry.service is first.service
                    and entry.pending is not None
                    and entry.due() <= now
                ):
                    claimed.append(entry)
        for entry in claimed:
            entry.last_sent = now
        return claimed

    def _forget_released(self) -> None:
        self._prune = False
        for key, entry in list(self._entries.items()):
            if entry.closed and entry.pending is None:
                del self._entries[key]

    def _deliver_batch(self, session: Any, picked: list[tuple]) -> None:
        """One POST for many workers' states. The service takes all or none: when it refuses
        the batch, each state goes again on its own, so one bad state costs only itself."""
        service = picked[0][0].service
        timeout = max(entry.timeout for entry, _, _ in picked)
        body = json.dumps([params for _, params, _ in picked], ensure_ascii=False)
        resp = None
        try:
            resp = session.post(
                picked[0][0].url,
                data=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
            outcome = _http.classify(resp.status_code)
            problem = "" if outcome == _http.OK else self._problem(resp)
        except requests.RequestException as exc:
            outcome, problem = _http.RETRY, _http.describe_exception(exc, timeout)
        except Exception:  # not the network (a value JSON cannot encode?): try them one by one
            outcome, problem = _http.REJECT, ""
        finally:
            if resp is not None:
                resp.close()
        if outcome != _http.REJECT:
            label = f"{len(picked)} workers (batched)"
            self._settle(picked, outcome, problem, _http.retry_after(resp), label)
            return
        rejected_singly = False
        for entry, params, seq in picked:
            rejected_singly |= self._deliver(session, entry, params, seq) == _http.REJECT
        if not rejected_singly:
            service.batches = False

    @staticmethod
    def _problem(resp: requests.Response) -> str:
        title, description = _http.error_detail(resp)
        return _http.rejection_message(resp.status_code, title, description)

    def _deliver(self, session: Any, entry: _Entry, params: dict[str, Any], seq: int) -> str:
        resp = None
        try:
            resp = _http.send(session, entry.url, params, entry.timeout)
            outcome = _http.classify(resp.status_code)
            problem = "" if outcome == _http.OK else self._problem(resp)
        except _PERMANENT as exc:  # sending the same thing again cannot work either
            outcome, problem = _http.REJECT, f"cannot send: {type(exc).__name__}: {exc}"
        except requests.RequestException as exc:
            outcome, problem = _http.RETRY, _http.describe_exception(exc, entry.timeout)
        except Exception as exc:  # not the network: a bug or a value requests cannot encode
            outcome, problem = _http.REJECT, f"cannot send: {type(exc).__name__}: {exc}"
        finally:
            if resp is not None:
                resp.close()
        gone = resp is not None and resp.status_code == 404
        self._settle(
            [(entry, params, seq)], outcome, problem, _http.retry_after(resp), entry.label, gone
        )
        return outcome

    def _settle(
        self,
        picked: list[tuple],
        outcome: str,
        problem: str,
        hint: float | None,
        label: str,
        gone: bool = False,
    ) -> None:
        """Record how a delivery ended. `gone`: the service does not know the job (404): a
        batch is refused whole and its states sent one by one, so this is one worker's."""
        with self._cond:
            self._attempts += 1
            service = picked[0][0].service
            if outcome == _http.RETRY:
                service.failures += 1
                service.failed_gen = self._attempts
                service.retry_at = time.monotonic() + _http.backoff(service.failures, hint)
                self._log.warning(
                    ("down", service.base_url),
                    f"progress service {service.base_url} unavailable ({problem}); "
                    f"keeping the latest state of {label} and retrying",
                )
            else:
                if service.failures:
                    log.info("progress service %s is reachable again", service.base_url)
                    self._log.forget(("down", service.base_url))
                service.failures = 0
                service.retry_at = 0.0
                if gone:
                    self._job_gone(service.base_url, picked[0][1], problem)
                elif outcome == _http.REJECT:
                    self._log.warning(
                        ("rejected", service.base_url, problem),
                        f"progress service rejected the update of {label}: {problem}",
                    )
                if outcome == _http.OK and self._gone:
                    self._job_back(service.base_url, picked)
                for entry, _, seq in picked:
                    if entry.seq == seq:  # nothing newer arrived while this was in flight
                        entry.pending = None
                        entry.urgent = False
                        if entry.closed and self._entries.get(entry.key) is entry:
                            del self._entries[entry.key]
            self._cond.notify_all()

    def _job_gone(self, base_url: str, params: dict[str, Any], problem: str) -> None:
        """One warning per job, whatever its number of workers: the job is what is missing
        (expired, deleted, or the service's store was reset). Its workers' later states are
        still sent, so a job created again takes them at once; each one refused is dropped."""
        jobid = str(params.get("jobid", ""))
        if (base_url, jobid) in self._gone:  # never the params: they may hold the secret
            log.debug(
                "progress_client: job %r is gone; dropped a state of %r",
                jobid,
                params.get("workid"),
            )
            return
        self._gone.add((base_url, jobid))
        log.warning(
            "progress_client: job %r is gone from the progress service %s (%s); the updates "
            "of all its workers are dropped until the job is created again",
            jobid,
            base_url,
            problem,
        )

    def _job_back(self, base_url: str, picked: list[tuple]) -> None:
        for _, params, _ in picked:
            jobid = str(params.get("jobid", ""))
            if (base_url, jobid) in self._gone:
                self._gone.discard((base_url, jobid))
                log.info("progress_client: job %r takes updates again", jobid)


_sender: Sender | None = None
_sender_lock = threading.Lock()


def get_sender() -> Sender:
    """The process-wide sender, created on first use."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = Sender()
            _flush_at_multiprocessing_exit()
        return _sender


def reset() -> None:
    """Stop and forget the process-wide sender; the next report makes a fresh one (tests)."""
    global _sender
    with _sender_lock:
        old, _sender = _sender, None
    if old is not None:
        old.stop()


def flush(timeout: float = DEFAULT_EXIT_FLUSH) -> bool:
    """Deliver every queued report now, waiting at most `timeout` seconds.

    Returns True when nothing is left queued (delivered, or rejected by the service)."""
    with _sender_lock:
        sender = _sender
    return True if sender is None else sender.flush(timeout)


def queued() -> int:
    """How many workers of this process have a state that has not been delivered yet."""
    with _sender_lock:
        sender = _sender
    return 0 if sender is None else sender.queued()


_exit_flush_timeout: float | None = None  # set_exit_flush_timeout(); None: the environment's


def set_exit_flush_timeout(seconds: float | None) -> None:
    """Bound the flush at interpreter exit to `seconds` (0: do not wait at all), for a program
    that has already waited for its reports itself. None goes back to $PROGRESS_FLUSH_TIMEOUT,
    else 5 s."""
    global _exit_flush_timeout
    _exit_flush_timeout = None if seconds is None else max(float(seconds), 0.0)


def _exit_timeout() -> float:
    if _exit_flush_timeout is not None:
        return _exit_flush_timeout
    try:
        return max(float(os.environ.get(ENV_FLUSH_TIMEOUT, DEFAULT_EXIT_FLUSH)), 0.0)
    except ValueError:
        return DEFAULT_EXIT_FLUSH


_exit_flushed_in = 0  # pid of the process whose exit flush has run


def _flush_at_exit() -> None:
    global _exit_flushed_in
    if _exit_flushed_in == os.getpid():  # atexit and multiprocessing may both call this
        return
    _exit_flushed_in = os.getpid()
    try:
        if not flush(_exit_timeout()):
            log.warning("progress_client: %d worker state(s) not delivered before exit", queued())
    except Exception:  # exiting anyway; never turn a clean exit into a traceback
        pass


_mp_finalizer_in = 0  # pid of the process that registered a multiprocessing finalizer


def _flush_at_multiprocessing_exit() -> None:
    """A multiprocessing child started by fork ends with os._exit(), skipping atexit; it does
    run multiprocessing's own finalizers, registered per process (the registry is cleared in
    each new child, whose first report creates its sender and so comes through here)."""
    global _mp_finalizer_in
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None or _mp_finalizer_in == os.getpid():
        return
    try:
        mp_util.Finalize(None, _flush_at_exit, exitpriority=10)
        _mp_finalizer_in = os.getpid()
    except Exception:
        pass


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here, and its lock may have been held at fork time.
    global _sender, _sender_lock
    _sender = None
    _sender_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
