"""The Celery app: queues, routes, reliability settings and the beat schedule."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from tasks.settings import Settings

INGEST_QUEUE = "ingest"
RENDER_QUEUE = "render"


def configure(app: Celery, settings: Settings) -> Celery:
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.redis_timeout,
        broker_transport_options={
            # A message a killed worker held goes back to the queue after this long (kombu's
            # default is an hour). Our own sweep re-sends lost work sooner; this is the backstop.
            "visibility_timeout": 60,
            "socket_timeout": settings.redis_timeout,
            "socket_connect_timeout": settings.redis_timeout,
            "retry_on_timeout": False,
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only once done and is given back if its process dies: safe
        # because every task is idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        # Fail a publish fast so the web process can answer 503 instead of hanging.
        task_publish_retry=False,
        task_queues=[Queue(INGEST_QUEUE), Queue(RENDER_QUEUE)],
        task_default_queue=INGEST_QUEUE,
        task_routes={
            "tasks.ingest.*": {"queue": INGEST_QUEUE},
            "tasks.render.*": {"queue": RENDER_QUEUE},
            "tasks.maintenance.*": {"queue": INGEST_QUEUE},
        },
        beat_schedule={
            "expire-jobs": {
                "task": "tasks.maintenance.expire_jobs",
                "schedule": settings.expire_every,
            },
            "resend-lost-work": {
                "task": "tasks.maintenance.resend_lost_work",
                "schedule": settings.sweep_every,
            },
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


app = Celery("progress", include=["tasks.ingest", "tasks.render", "tasks.maintenance"])
configure(app, Settings.from_env())
