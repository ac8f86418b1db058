"""`make run`'s embedded Redis, started as its Procfile line starts it: files under var/ of the
folder it runs in, a unix socket only, and bounded memory with no eviction."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from tests.harness import ROOT, wait_until


def test_embedded_redis_is_bounded_and_never_evicts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROGRESS_REDIS_MAXMEMORY": "5mb"}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.embedded_redis"], cwd=tmp_path, env=env)
    try:
        client = redis.Redis(unix_socket_path=str(tmp_path / "var" / "redis.sock"))

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 10, what="the embedded Redis")
        assert client.config_get("maxmemory") == {"maxmemory": str(5 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("port") == {"port": "0"}  # no TCP port to collide on
        assert (tmp_path / "var" / "redis").is_dir()  # its data stays in var/
    finally:
        proc.terminate()
        proc.wait(10)
