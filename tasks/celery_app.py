"""The Celery app: queues, routes, reliability settings and the beat schedule."""

from __future__ import annotations

import logging
import time

from celery import Celery, signals
from celery.utils.log import get_multiprocessing_logger
from kombu import Queue

from domain import logs
from tasks import broker_faults, runtime, watchdog
from tasks.pipeline import INGEST_QUEUE, NOTIFY_QUEUE, RENDER_QUEUE
from tasks.redis_address import sentinel_transport_options
from tasks.settings import Settings

SWEEP_ENTRY = "resend-lost-work"  # beat's sweep; tasks.beat records when it sends it
broker_faults.install()  # no worker or beat dies of a Redis fault it can wait out
watchdog.install()  # a worker that no longer consumes exits, for its supervisor to restart


def configure(app: Celery, settings: Settings) -> Celery:
    """Set `app` up for `settings` (tests and tools; a worker is set up on first use)."""
    app.conf.update(celery_config(settings))
    return app


def celery_config(settings: Settings) -> dict:
    return dict(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a Redis outage, never exits
        broker_connection_timeout=settings.redis_timeout,
        broker_transport_options={
            # A message a killed worker held goes back to the queue after this long (kombu's
            # default is an hour), for any message our own records do not cover.
            "visibility_timeout": 60,
            # Well above the slowest script's run time: a reply cut off by a timeout while
            # Redis is busy elsewhere loses kombu's fetch or ack, and can leave the worker
            # consuming nothing (celery/celery#10205).
            "socket_timeout": settings.broker_socket_timeout,
            "socket_connect_timeout": settings.redis_timeout,
            "retry_on_timeout": False,
            **sentinel_transport_options(
                settings.redis_url, settings.sentinel_password, settings.redis_timeout
            ),
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        # Acknowledge on receipt. Work is not lost with a killed process because every batch and
        # every due render has its own record in Redis, which beat's sweep re-sends when it is
        # overdue (tasks.maintenance). Late acks would add nothing but a crash: kombu's Redis
        # transport dies acking a late message on a connection lost in a Redis outage.
        task_acks_late=False,
        worker_prefetch_multiplier=4,
        # Fail a publish fast so the web process can answer 503 instead of hanging.
        task_publish_retry=False,
        task_queues=[Queue(INGEST_QUEUE), Queue(RENDER_QUEUE), Queue(NOTIFY_QUEUE)],
        task_default_queue=INGEST_QUEUE,
        task_routes={
            "tasks.ingest.*": {"queue": INGEST_QUEUE},
            "tasks.render.*": {"queue": RENDER_QUEUE},
            "tasks.notify.*": {"queue": NOTIFY_QUEUE},
            "tasks.maintenance.*": {"queue": INGEST_QUEUE},
        },
        # In memory: beat needs no schedule file (tasks.beat).
        beat_scheduler="tasks.beat:Scheduler",
        beat_schedule={
            "expire-jobs": {
                "task": "tasks.maintenance.expire_jobs",
                "schedule": settings.expire_every,
            },
            SWEEP_ENTRY: {
                "task": "tasks.maintenance.resend_lost_work",
                "schedule": settings.sweep_every,
            },
        },
        worker_send_task_events=False,
    )


app = Celery(
    "progress", include=["tasks.ingest", "tasks.render", "tasks.maintenance", "tasks.notify"]
)
# Configured when first used, from the settings of tasks.runtime, not on import.
app.add_defaults(lambda: celery_config(runtime.settings()))


# One structured line per task, instead of Celery's two free-text ones.
_task_log = logging.getLogger("progress.task")
_started: dict[str, float] = {}


@signals.celeryd_init.connect
def _log_before_the_worker_starts(options=None, **kwargs) -> None:
    """Early, so the warnings of the worker's first checks (running as root) are lines too."""
    logs.setup((options or {}).get("loglevel") or logging.INFO)


@signals.setup_logging.connect
def _log_as_every_process_does(loglevel=None, **kwargs) -> None:
    """Connected, this replaces Celery's own set-up for the worker, beat and task loggers
    alike: every line in domain.logs' format (the banner is off: the Procfile's --quiet)."""
    logs.setup(loglevel or logging.INFO)
    # billiard's pool logger does not propagate and has no handler: Python's last-resort
    # handler would print its records ("Process ... exited with ...", an error) bare. Its info
    # records (each pool child's start, each shared-memory block) are noise in a service's log.
    pool_log = get_multiprocessing_logger()
    pool_log.propagate = True
    pool_log.setLevel(logging.WARNING)
    for name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, retval=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    elapsed = 0.0 if started is None else (time.perf_counter() - started) * 1000
    _task_log.info(
        "event=task task=%s id=%s state=%s ms=%.1f result=%s",
        task.name if task else "?",
        task_id,
        state,
        elapsed,
        retval if isinstance(retval, (int, float, bool)) or retval is None else "-",
    )
