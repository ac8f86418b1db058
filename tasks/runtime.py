"""Per-process singletons for the Celery tasks: settings, the store and the pipeline, built on
first use from the environment (through Settings.from_env, the one reader of it)."""

from __future__ import annotations

import functools

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel

from tasks.broker import Broker
from tasks.pipeline import Pipeline
from tasks.redis_address import sentinel_address, sentinel_connection_kwargs
from tasks.settings import Settings
from tasks.store import Store


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def store() -> Store:
    return Store(connect(settings()))


@functools.cache
def pipeline() -> Pipeline:
    return build_pipeline(store(), settings())


def build_pipeline(store: Store, settings: Settings) -> Pipeline:
    return Pipeline(store, Broker(store.redis), settings)


def connect(settings: Settings) -> Redis:
    """A client that fails fast: a dead Redis costs a caller at most redis_timeout per call.

    A broken connection (Redis restarted) is retried once at once on a new one; a timeout is
    not retried (redis-py's default, ten retries, would hold a request for ten timeouts).
    Behind Sentinel every new connection asks the sentinels for the master, and one to a master
    that became a replica is dropped on its first READONLY reply, so a promotion is followed on
    the next call."""
    options = dict(
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,)),
    )
    address = sentinel_address(settings.redis_url)
    if address is None:
        return Redis.from_url(settings.redis_url, **options)
    sentinels = Sentinel(
        list(address.sentinels),
        sentinel_kwargs=sentinel_connection_kwargs(
            settings.sentinel_password, settings.redis_timeout
        ),
    )
    return sentinels.master_for(
        address.master_name,
        redis_class=Redis,
        db=address.db,
        username=address.username,
        password=address.password,
        **options,
    )
