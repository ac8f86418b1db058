"""The service's settings: the one place that reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from tasks.redis_address import broker_url, sentinel_address

ONE_WEEK = 7 * 24 * 3600


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
    # What one web process (waitress) lets clients hold. Past connection_limit it stops accepting
    # and new connections wait in the kernel's backlog; each open connection costs a descriptor
    # (the process raises its soft RLIMIT_NOFILE to the hard limit) and up to
    # max_request_header_size + web_inbuf_overflow bytes of memory while its request arrives.
    # Per process: an idle connection costs about 3 KB; all of them mid-request ~0.6 GB.
    web_connection_limit: int = 2000
    web_backlog: int = 2048  # connections the kernel queues (capped by net.core.somaxconn)
    # Seconds of silence before a connection is closed (an idle keep-alive, or a client that
    # stopped sending): lower frees slots sooner but cuts off slow links sooner.
    web_channel_timeout: int = 30
    # Connections one client address (an IPv6 /64) may hold in one web process: past it a new
    # one is closed at once, so one client cannot fill connection_limit and make everybody's
    # new connections wait in the backlog. Behind a reverse proxy every client is the proxy's
    # address: set 0 (no limit) and limit per client in the proxy.
    web_connections_per_address: int = 100
    # Seconds a connection has to send a request's line and headers, from its first byte (a new
    # connection: from when it opens); the body is then under web_channel_timeout.
    web_header_timeout: float = 10.0
    # Request line + headers; larger gets 431. A GET update with every field at its longest,
    # percent-encoded, is about 20 KB.
    web_max_request_header_size: int = 65536
    web_inbuf_overflow: int = 262144  # body bytes held in memory; beyond, spooled to a temp file
    # Worker rows status pages may list per second to one client address (each web process
    # counts its own; pages of over 100 rows are charged, api/read_budget.py): a 10,000-row page
    # takes about 0.2 s of a web process's CPU, so clients looping on big pages cannot take it
    # from the updates.
    web_status_rows_per_second: int = 10_000  # 0 = no limit
    public_url: str = ""  # base for the URLs create returns; default: the request's own host
    render_interval: float = 1.0  # a job is re-rendered at most this often
    expire_every: float = 60.0  # how often beat deletes jobs older than their maxage
    sweep_every: float = 5.0  # how often beat re-sends work a killed process left behind
    redeliver_after: float = 20.0  # work older than this is presumed lost and sent again
    stale_after: float = 300.0  # a running worker silent this long is drawn as stale
    # A Celery worker with messages waiting on its queue that has received and run no task for
    # this long has stopped consuming (tasks.watchdog): it exits for its supervisor to restart.
    # Well above sweep_every, which puts a heartbeat on each queue.
    wedged_after: float = 60.0
    default_maxage: int = ONE_WEEK
    max_maxage: int = 366 * 24 * 3600
    max_id_length: int = 256
    max_desc_length: int = 1024
    max_meta_length: int = 4096  # create's meta (a JSON object), in characters
    max_body_bytes: int = 1 << 20
    max_workers_per_job: int = 100_000
    # A worker's free-form counters (ARP's report column: POST {"counters": {...}}): how many
    # names one worker may hold, and how long a name and a string value may be.
    max_counters: int = 20
    max_counter_name_length: int = 64
    max_counter_value_length: int = 64
    # Storage bounds: past them the service answers 503 with Retry-After instead of growing
    # Redis without end (a running worker takes about 450 bytes with its index entries, a
    # finished one about 240, a chart 5-50 KB).
    max_jobs: int = 10_000
    max_worker_rows: int = 3_000_000  # all jobs together: at most about 1.4 GB of Redis
    max_inbox: int = 1_000_000  # updates accepted but not yet applied (ingest falling behind)
    # What one job's worker rows may hold: per worker its id and row (stamp, state, numbers,
    # desc, in UTF-8 bytes), summed. 16 MiB holds 100,000 workers with 130-byte ids, or 12,700
    # with 256-byte ids and 1,000-byte descs; the worst of these (ids are kept in several
    # indexes) takes 131 MB of Redis, under 7 % of the embedded 2gb.
    max_job_bytes: int = 16 << 20
    # Per-client quotas, by the address a job was created from (its owner): every row of the job
    # counts against it, whoever posts the update. 0 (the default): a tenth of the global pool
    # (PROGRESS_MAX_JOBS, PROGRESS_MAX_WORKER_ROWS), so one address leaves room for nine others
    # however the pools are sized.
    max_jobs_per_address: int = 0
    max_worker_rows_per_address: int = 0
    # A job with no update for this long is expired by beat although its maxage has not passed
    # (its deadline is min(created + maxage, last change + idle_expiry)); 0 = off.
    idle_expiry: int = ONE_WEEK
    create_rate_limit: float = 2.0  # creates per second per client address (burst 60); 0 = off
    redis_maxmemory: str = "2gb"  # the embedded Redis's limit (make run without REDIS_URL)
    redis_timeout: float = 1.0  # every Redis call gives up after this, so callers get a 503
    # The Celery workers' own connections wait longer: a slow script elsewhere must not cut
    # them off mid-reply (a lost ack or fetch there can leave a worker consuming nothing).
    broker_socket_timeout: float = 30.0
    sentinel_password: str = ""  # for sentinels that require their own (REDIS_URL redis+sentinel)
    # Answer an update, create or delete only once this many replicas have it (Redis WAIT), so
    # a failover loses nothing acknowledged; not reached within min_replicas_timeout: 503.
    min_replicas: int = 0
    min_replicas_timeout: float = 0.5  # seconds; kept below redis_timeout
    list_jobs: bool = True
    update_rate_limit: float = 0.0  # updates per second per client address; 0 = no limit
    notify_hosts: str = ""  # comma-separated hosts (host or host:port) create's notify may call
    # The hook's signing key (Standard Webhooks: whsec_ and the base64 of 24-64 random bytes).
    # Receivers verify with it, so the operator sets it and gives it to them. Empty: the notify
    # workers generate one and share it through Redis (Store.notify_key), which only someone who
    # can read Redis can then give to receivers.
    notify_key: str = ""

    @property
    def notify_allowed(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.notify_hosts.split(",") if h.strip())

    def __post_init__(self) -> None:
        for quota, pool in (
            ("max_jobs_per_address", self.max_jobs),
            ("max_worker_rows_per_address", self.max_worker_rows),
        ):
            if getattr(self, quota) == 0:
                object.__setattr__(self, quota, max(1, pool // 10))

    @property
    def broker_url(self) -> str:
        """Celery's spelling of the same Redis."""
        return broker_url(self.redis_url)

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
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that cannot work, naming the variable (ValueError)."""
        sentinel_address(self.redis_url)  # raises for a URL of no known kind
        if self.wedged_after < 3 * self.sweep_every:
            raise ValueError("PROGRESS_WEDGED_AFTER must be at least 3 x PROGRESS_SWEEP_EVERY")
        for name in ("max_job_bytes", "max_jobs_per_address", "max_worker_rows_per_address"):
            if getattr(self, name) < 1:
                raise ValueError(f"PROGRESS_{name.upper()} must be 1 or more")
        if self.idle_expiry < 0:
            raise ValueError("PROGRESS_IDLE_EXPIRY must be 0 (off) or more seconds")
        if self.min_replicas < 0:
            raise ValueError("PROGRESS_MIN_REPLICAS must be 0 or more")
        if not 0 < self.min_replicas_timeout < self.redis_timeout:
            raise ValueError(
                "PROGRESS_MIN_REPLICAS_TIMEOUT must be above 0 and below PROGRESS_REDIS_TIMEOUT"
            )
        if not 0 <= self.web_connections_per_address < self.web_connection_limit:
            raise ValueError(
                "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS must be 0 (no limit) or more, and below "
                "PROGRESS_WEB_CONNECTION_LIMIT"
            )
        if self.web_header_timeout <= 0:
            raise ValueError("PROGRESS_WEB_HEADER_TIMEOUT must be above 0")
        if self.web_status_rows_per_second < 0:
            raise ValueError("PROGRESS_WEB_STATUS_ROWS_PER_SECOND must be 0 (no limit) or more")


def _parse(raw: str, default):
    if isinstance(default, bool):
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw
