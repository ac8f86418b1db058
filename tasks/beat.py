"""Beat's scheduler: the schedule lives in memory, so beat needs no file and no writable folder,
and each sweep it sends is recorded in Redis, so /healthz can tell a missing beat from a missing
worker. Losing the schedule's state on a restart costs nothing: every periodic task is idempotent
and runs again within one period."""

from __future__ import annotations

import logging
import time

from celery import beat
from redis.exceptions import RedisError

from tasks import runtime
from tasks.celery_app import SWEEP_ENTRY

log = logging.getLogger("progress.beat")


class Scheduler(beat.Scheduler):
    def apply_entry(self, entry: beat.ScheduleEntry, producer=None) -> None:
        super().apply_entry(entry, producer=producer)
        if entry.name == SWEEP_ENTRY:
            try:
                runtime.store().heartbeat("beat", time.time())
            except RedisError as exc:  # Redis is down: the sweep's publish failed as well
                log.warning("event=beat_heartbeat_failed error=%s", type(exc).__name__)
