"""Sending Celery tasks by name: Celery's task protocol 2 in kombu's Redis envelope, the same
bytes `task.apply_async(args, countdown=...)` would push, pushed with one LPUSH. The web process
needs no Celery app and no worker module to send work, and skips kombu's publish, which costs
more CPU than the rest of a request."""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from redis import Redis

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Broker:
    """Puts task messages on the Celery queues kept in Redis (a queue is a list of its name)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def send(self, task_name: str, args: tuple, queue: str, countdown: float = 0.0) -> None:
        """Queue a task; with a countdown, the worker that takes it waits that long first."""
        self.redis.lpush(queue, task_message(task_name, args, queue, countdown))


def task_message(task_name: str, args: tuple, queue: str, countdown: float = 0.0) -> bytes:
    task_id = str(uuid.uuid4())
    eta = None
    if countdown > 0:
        eta = (datetime.now(UTC) + timedelta(seconds=countdown)).isoformat()
    body = json.dumps([list(args), {}, _EMBED]).encode()
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task_name,
                "id": task_id,
                "shadow": None,
                "eta": eta,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": repr(args),
                "kwargsrepr": "{}",
                "origin": _ORIGIN,
                "ignore_result": True,
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()
