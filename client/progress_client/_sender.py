"""The background sender: delivers worker reports off the caller's thread, coalesced and retried.

One daemon thread per process serves every worker handle. A handle only stores its latest state
here (a dict assignment under a lock) and returns; the thread sends, for each worker, the newest
state it has, at most once per the worker's `min_interval`. Failures cost the worker a
rate-limited log line: the state stays queued and is retried with backoff (per service, so a dead
service is not hammered once per worker), a newer state simply replaces it, and a 4xx answer other
than 429 drops it. At interpreter exit the queue is flushed with a bounded wait.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any, Dict, Hashable, Iterable, Optional

import requests

from . import _http

log = logging.getLogger("progress_client")

ENV_FLUSH_TIMEOUT = "PROGRESS_FLUSH_TIMEOUT"
DEFAULT_EXIT_FLUSH = 5.0
LOG_EVERY = 60.0  # seconds between two log lines about the same problem

_INF = float("inf")


class _Service:
    """Health of one base URL: consecutive failures and when to try again."""

    __slots__ = ("base_url", "failures", "retry_at", "failed_gen")

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.failures = 0
        self.retry_at = 0.0
        self.failed_gen = -1  # attempt number of the last failure


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
        self.pending: Optional[Dict[str, Any]] = None
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
        self._last: Dict[Hashable, float] = {}
        self._held: Dict[Hashable, int] = {}

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
        self._cond = threading.Condition()
        self._entries: Dict[Hashable, _Entry] = {}
        self._services: Dict[str, _Service] = {}
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._next_wake = _INF  # when the idle thread will wake by itself
        self._attempts = 0
        self._log = _RateLimitedLog()

    # -- called from worker threads: cheap, never blocking on the network ------------------

    def submit(
        self,
        key: Hashable,
        base_url: str,
        label: str,
        params: Dict[str, Any],
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
                entry.closed = True
                if entry.pending is None:
                    del self._entries[key]

    def flush(self, timeout: float, keys: Optional[Iterable[Hashable]] = None) -> bool:
        """Send queued states now; wait until each is out, dropped, or has failed once more.

        Returns True when none of them is left queued. Never waits longer than `timeout`."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            wanted = set(keys) if keys is not None else None
            targets = [
                e
                for e in self._entries.values()
                if e.pending is not None and (wanted is None or e.key in wanted)
            ]
            if not targets:
                return True
            started = self._attempts
            for entry in targets:
                entry.urgent = True
                entry.service.retry_at = 0.0  # one more try now, even while backing off
            self._start()
            self._cond.notify_all()
            while True:
                unsettled = [
                    e
                    for e in targets
                    if e.pending is not None and e.service.failed_gen <= started
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
                entry, params, seq = picked
                self._deliver(session, entry, params, seq)
            except Exception:  # this thread must outlive any bug; the worker must not notice
                log.exception("progress_client: unexpected error in the sender thread")
                time.sleep(1.0)

    def _next(self) -> Optional[tuple]:
        """Block until some worker's state is due; claim it."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                best: Optional[_Entry] = None
                best_due = _INF
                for entry in self._entries.values():
                    if entry.pending is not None:
                        due = entry.due()
                        if due < best_due:
                            best, best_due = entry, due
                if best is not None and best_due <= now:
                    self._next_wake = -_INF  # busy: it looks at the queue again when done
                    best.last_sent = now
                    return best, best.pending, best.seq
                self._next_wake = best_due
                self._cond.wait(None if best_due == _INF else best_due - now)
            self._thread = None
            self._cond.notify_all()
            return None

    def _deliver(self, session: Any, entry: _Entry, params: Dict[str, Any], seq: int) -> None:
        resp = None
        try:
            resp = _http.send(session, entry.url, params, entry.timeout)
            outcome = _http.classify(resp.status_code)
            if outcome == _http.OK:
                problem = ""
            else:
                title, description = _http.error_detail(resp)
                problem = _http.rejection_message(resp.status_code, title, description)
        except requests.RequestException as exc:
            outcome, problem = _http.RETRY, _http.describe_exception(exc, entry.timeout)
        finally:
            if resp is not None:
                resp.close()
        self._settle(entry, seq, outcome, problem, _http.retry_after(resp))

    def _settle(
        self, entry: _Entry, seq: int, outcome: str, problem: str, hint: Optional[float]
    ) -> None:
        with self._cond:
            self._attempts += 1
            service = entry.service
            if outcome == _http.RETRY:
                service.failures += 1
                service.failed_gen = self._attempts
                service.retry_at = time.monotonic() + _http.backoff(service.failures, hint)
                self._log.warning(
                    ("down", service.base_url),
                    f"progress service {service.base_url} unavailable ({problem}); "
                    f"keeping the latest state of {entry.label} and retrying",
                )
            else:
                if service.failures:
                    log.info("progress service %s is reachable again", service.base_url)
                    self._log.forget(("down", service.base_url))
                service.failures = 0
                service.retry_at = 0.0
                if outcome == _http.REJECT:
                    self._log.warning(
                        ("rejected", service.base_url, problem),
                        f"progress service rejected the update of {entry.label}: {problem}",
                    )
                if entry.seq == seq:  # nothing newer arrived while this was in flight
                    entry.pending = None
                    entry.urgent = False
                    if entry.closed and self._entries.get(entry.key) is entry:
                        del self._entries[entry.key]
            self._cond.notify_all()


_sender: Optional[Sender] = None
_sender_lock = threading.Lock()


def get_sender() -> Sender:
    """The process-wide sender, created on first use."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = Sender()
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


def _exit_timeout() -> float:
    try:
        return max(float(os.environ.get(ENV_FLUSH_TIMEOUT, DEFAULT_EXIT_FLUSH)), 0.0)
    except ValueError:
        return DEFAULT_EXIT_FLUSH


def _flush_at_exit() -> None:
    try:
        if not flush(_exit_timeout()):
            log.warning(
                "progress_client: %d worker state(s) not delivered before exit", queued()
            )
    except Exception:  # exiting anyway; never turn a clean exit into a traceback
        pass


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here, and its lock may have been held at fork time.
    global _sender, _sender_lock
    _sender = None
    _sender_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
