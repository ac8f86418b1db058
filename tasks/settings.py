"""The service's settings: the one place that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

ONE_WEEK = 7 * 24 * 3600
# Every process logs logfmt lines in this format (the web and the Celery processes).
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def embedded_redis_url() -> str:
    """Where `make run`'s embedded redis-server listens: a unix socket in the ignored var/ folder,
    so it can never collide with a Redis already running on the machine."""
    return f"unix://{Path.cwd() / 'var' / 'redis.sock'}"


@dataclass(frozen=True)
class Settings:
    redis_url: str = ""
    host: str = "0.0.0.0"  # the web process listens on this address and `port`
    port: int = 8000
    web_processes: int = 2  # waitress processes sharing the port (each bound to one core)
    web_threads: int = 48  # threads per web process
    public_url: str = ""  # base for the URLs create returns; default: the request's own host
    render_interval: float = 1.0  # a job is re-rendered at most this often
    expire_every: float = 60.0  # how often beat deletes jobs older than their maxage
    sweep_every: float = 5.0  # how often beat re-sends work a killed process left behind
    redeliver_after: float = 20.0  # work older than this is presumed lost and sent again
    stale_after: float = 300.0  # a running worker silent this long is drawn as stale
    default_maxage: int = ONE_WEEK
    max_maxage: int = 366 * 24 * 3600
    max_id_length: int = 256
    max_desc_length: int = 1024
    max_body_bytes: int = 1 << 20
    max_workers_per_job: int = 100_000
    create_wait: float = 3.0  # create waits this long for the first chart to be rendered
    redis_timeout: float = 1.0  # every Redis call gives up after this, so callers get a 503
    list_jobs: bool = True
    update_rate_limit: float = 0.0  # updates per second per client address; 0 = no limit
    notify_hosts: str = ""  # comma-separated hosts (host or host:port) create's notify may call

    @property
    def notify_allowed(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.notify_hosts.split(",") if h.strip())

    @property
    def broker_url(self) -> str:
        """Celery's spelling of the same Redis."""
        if self.redis_url.startswith("unix://"):
            path, _, query = self.redis_url[len("unix://") :].partition("?")
            return f"redis+socket://{path}" + (f"?{query}" if query else "")
        return self.redis_url

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Read REDIS_URL, PORT and PROGRESS_<FIELD> variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict = {"redis_url": env.get("REDIS_URL") or embedded_redis_url()}
        if env.get("PORT"):
            values["port"] = int(env["PORT"])
        for f in fields(cls):
            raw = env.get(f"PROGRESS_{f.name.upper()}")
            if raw is None or f.name in ("redis_url", "port"):
                continue
            values[f.name] = _parse(raw, f.default)
        values.update(overrides)
        return cls(**values)


def _parse(raw: str, default):
    if isinstance(default, bool):
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw
