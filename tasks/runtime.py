"""Per-process singletons for the Celery tasks: settings and the store, built on first use."""

from __future__ import annotations

import functools

from redis import Redis

from tasks.settings import Settings
from tasks.store import Store


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def store() -> Store:
    return Store(connect(settings()))


def connect(settings: Settings) -> Redis:
    """A client that fails fast: a dead Redis costs a caller at most redis_timeout per call."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )
