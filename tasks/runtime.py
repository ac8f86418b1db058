"""Per-process singletons for the Celery tasks: settings, the store and the pipeline, built on
first use from the environment (through Settings.from_env, the one reader of it)."""

from __future__ import annotations

import functools

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

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
    Behind Sentinel every connection asks the sentinels for the master whenever it connects
    (MasterConnection), and one to a master that became a replica is dropped on its first
    READONLY reply, so a promotion is followed on the next call."""
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
        connection_class=MasterConnection,
        db=address.db,
        username=address.username,
        password=address.password,
        **options,
    )


class MasterConnection(SentinelManagedConnection):
    """A connection to the master that asks the sentinels where it is every time it connects.

    redis-py's own (SentinelManagedConnection) asks only when a pool hands it out; a dropped
    connection that is used again (the retry after an error; every call of a client holding
    one connection, as Store's per-thread clients do) reconnects in connect_check_health
    (redis-py 8.1) to the address it had. After a failover that is the old master:
    refused while it is down, and served, empty, once it is restarted. (A connection the pool
    hands out asks twice, once here: one more round trip to a sentinel per new connection.)"""

    def connect_check_health(self, *args, **kwargs) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(*args, **kwargs)
