"""A worker's watchdog: the ingest, render and notify workers each notice when they no longer
consume their queue, and exit for their supervisor to start them again.

A worker can stay alive and connected while it asks Redis for no more work: celery/celery#10205,
where a fetch or an ack cut off by a timeout during a Redis stall leaves the consumer waiting on
a reply that never comes; the queue then grows and charts freeze with every process running.
The sign of it is plain from outside the consumer: messages wait on the worker's queue (beat's
sweep puts a heartbeat there every PROGRESS_SWEEP_EVERY seconds, tasks.pipeline.Pipeline.sweep)
while the worker has received no task, and runs none, for PROGRESS_WEDGED_AFTER seconds.

Recovery is an exit, not a reconnect in place: the consumer's state is unknown at that point
(the wedge is inside kombu), whereas a new process starts from nothing and every piece of work
is recorded in Redis and re-sent when overdue. So the watchdog logs one line and ends the
process with EXIT_WEDGED; supervisord, systemd and `make run` (bin/in-venv) start it again. A
Redis that does not answer is not a wedge: the consumer's own reconnect loop handles that.

Started by tasks.celery_app (`install`) from Celery's worker_ready signal, in the worker's main
process, where its consumer receives the messages (task_received).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from celery import signals
from celery.worker import state
from redis.exceptions import RedisError

from tasks import runtime
from tasks.pipeline import INGEST_QUEUE, NOTIFY_QUEUE, RENDER_QUEUE
from tasks.store import Store

EXIT_WEDGED = 70  # EX_SOFTWARE: systemd (Restart=always), supervisord and bin/in-venv restart it
WATCHED_QUEUES = (INGEST_QUEUE, RENDER_QUEUE, NOTIFY_QUEUE)
log = logging.getLogger("progress.watchdog")


class Watchdog:
    """The decision, for one worker and its queue: `check(now)` says whether it is wedged.

    The silence is counted from the later of the worker's last sign of work (a task received,
    or one seen running) and the moment messages were first seen waiting, so neither a quiet
    queue nor a Redis outage (nothing can be seen waiting) counts towards it."""

    def __init__(self, store: Store, queue: str, wedged_after: float, now: float) -> None:
        self.store = store
        self.queue = queue
        self.wedged_after = wedged_after
        self.last_work = now
        self.waiting_since: float | None = None
        self.waiting = 0

    def task_received(self, now: float) -> None:
        self.last_work = now

    def check(self, now: float, busy: bool = False) -> float | None:
        """Seconds the worker has been silent with messages waiting, if that is wedged_after or
        more; None otherwise. `busy`: a task of this worker is running now."""
        if busy:
            self.last_work = now
        try:
            self.waiting = int(self.store.operational_stats([self.queue])[f"queue:{self.queue}"])
        except RedisError:
            self.waiting = 0  # cannot tell: the consumer is reconnecting, or will
        if not self.waiting:
            self.waiting_since = None
            return None
        if self.waiting_since is None:
            self.waiting_since = now
        silent = now - max(self.last_work, self.waiting_since)
        return silent if silent >= self.wedged_after else None


def watch(
    watchdog: Watchdog,
    interval: float,
    stop: threading.Event,
    on_wedged: Callable[[Watchdog, float], None],
) -> None:
    """Check every `interval` seconds until `stop` is set; call on_wedged once if wedged."""
    while not stop.wait(interval):
        silent = watchdog.check(time.time(), busy=bool(state.active_requests))
        if silent is not None:
            on_wedged(watchdog, silent)
            return


def exit_wedged(watchdog: Watchdog, silent: float) -> None:
    """One clear line, then end the whole process at once (a wedged consumer may not take part
    in a warm shutdown; the pool's children exit when their parent is gone)."""
    log.error(
        "event=worker_wedged queue=%s waiting=%d silent_s=%.0f wedged_after_s=%.0f "
        "action=exit status=%d",
        watchdog.queue,
        watchdog.waiting,
        silent,
        watchdog.wedged_after,
        EXIT_WEDGED,
    )
    logging.shutdown()  # flush the line before _exit skips every other clean-up
    os._exit(EXIT_WEDGED)


_current: Watchdog | None = None


def _watched_queue(consumer) -> str | None:
    """The one queue of ours this worker consumes (the Procfile gives each worker one)."""
    names = [q for q in consumer.app.amqp.queues.consume_from if q in WATCHED_QUEUES]
    return names[0] if len(names) == 1 else None


def _start(sender=None, **kwargs) -> None:
    global _current
    queue = _watched_queue(sender)
    if _current is not None or queue is None:
        return
    wedged_after = runtime.settings().wedged_after
    _current = Watchdog(runtime.store(), queue, wedged_after, time.time())
    thread = threading.Thread(
        target=watch,
        args=(_current, min(5.0, wedged_after / 4), threading.Event(), exit_wedged),
        name="progress-watchdog",
        daemon=True,
    )
    thread.start()
    log.info("event=watchdog_started queue=%s wedged_after_s=%.0f", queue, wedged_after)


def _received(**kwargs) -> None:
    if _current is not None:
        _current.task_received(time.time())


def install() -> None:
    """Connect the watchdog to Celery's signals: started once the worker is ready."""
    signals.worker_ready.connect(_start, weak=False, dispatch_uid="progress-watchdog-start")
    signals.task_received.connect(_received, weak=False, dispatch_uid="progress-watchdog-seen")
