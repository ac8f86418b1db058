"""Real processes for tests and benchmarks: a throwaway redis-server on a free port, and the
service's processes started from the Procfile exactly as `make run` starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
import requests

from tasks.embedded_redis import server_args

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; return its value, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A private redis-server with its data in `data_dir`, append-only file on."""

    def __init__(
        self, data_dir: Path, unix_socket: bool = False, extra_args: tuple[str, ...] = ()
    ) -> None:
        """With unix_socket, clients are given the socket's URL (as `make run`'s embedded Redis
        does); the TCP port stays open too. `extra_args` go to redis-server after ours (e.g.
        "--replicaof", or "--enable-debug-command", "local")."""
        self.data_dir = data_dir
        self.port = free_port()
        self.socket = data_dir / "redis.sock" if unix_socket else None
        self.url = f"unix://{self.socket}" if self.socket else f"redis://127.0.0.1:{self.port}/0"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [*server_args(self.data_dir, self.socket, self.port), *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        wait_until(lambda: _pings(client), 10, what="redis-server to start")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # e.g. a replica still syncing
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


class SentinelGroup:
    """A master, `replicas` replicas and `sentinels` sentinels (redis-server --sentinel), each on
    a free loopback port of its own, with their files in `data_dir`. The sentinels agree that
    the master is down after `down_after_ms` of silence, and fail over to a replica."""

    MASTER_NAME = "progress"

    def __init__(
        self,
        data_dir: Path,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.down_after_ms = down_after_ms
        self.servers = [
            RedisServer(data_dir / f"redis-{n}", extra_args=extra_args) for n in range(1 + replicas)
        ]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinel_procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.MASTER_NAME}/0"

    def start(self) -> SentinelGroup:
        first, *others = self.servers
        first.start()
        for replica in others:
            replica.extra_args += ["--replicaof", "127.0.0.1", str(first.port)]
            replica.start()
        for replica in others:
            wait_until(lambda r=replica: _linked(r.client()), 20, what="a replica to sync")
        for n, port in enumerate(self.sentinel_ports):
            folder = self.data_dir / f"sentinel-{n}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"  # a sentinel rewrites its own config file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {first.port} "
                f"{len(self.sentinel_ports) // 2 + 1}\n"
                f"sentinel down-after-milliseconds {self.MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {self.MASTER_NAME} 1\n"
            )
            self.sentinel_procs.append(
                subprocess.Popen(
                    [server_args(folder, None)[0], str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_until(
            lambda: all(self._sees_replicas(port) for port in self.sentinel_ports),
            30,
            what="every sentinel to see the master and its replicas",
        )
        return self

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, socket_timeout=2)

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                return int(
                    self.sentinel(port).sentinel_get_master_addr_by_name(self.MASTER_NAME)[1]
                )
            except (redis.RedisError, TypeError):
                continue
        return None

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def _sees_replicas(self, port: int) -> bool:
        try:
            replicas = self.sentinel(port).sentinel_slaves(self.MASTER_NAME)
        except redis.RedisError:
            return False
        return len(replicas) == len(self.servers) - 1

    def stop(self) -> None:
        for proc in self.sentinel_procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        self.sentinel_procs = []
        for server in self.servers:
            server.stop()


def _linked(client: redis.Redis) -> bool:
    try:
        return client.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def procfile(root: Path = ROOT) -> dict[str, str]:
    entries = {}
    for line in (root / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def fresh_clone(destination: Path, install: bool = True) -> Path:
    """The committed tree (not the working tree), cloned and, with `install`, installed as the
    README tells an operator: `git clone`, then `make install`. Returns the clone's folder."""
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)], check=True
    )
    if not install:
        return destination
    subprocess.run(
        ["make", "--no-print-directory", "install"],
        cwd=destination,
        env=_outside_this_checkout(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return destination


def _outside_this_checkout() -> dict[str, str]:
    """This environment less what `make test` added: this checkout's venv on the PATH and the
    outer make's variables, so the clone is installed as on a machine of its own."""
    own_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != own_bin)
    skip = {"VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON"}
    return {**{k: v for k, v in os.environ.items() if k not in skip}, "PATH": path}


class Service:
    """The web, ingest, render, notify and beat processes of the Procfile, against a Redis.

    Each runs its Procfile line as written, through /bin/sh as honcho and the deploy files do,
    in `root` (this checkout, or a fresh clone). With `inherit_env=False` a process gets nothing
    but REDIS_URL, PORT and `env`: what an operator following the README sets."""

    def __init__(
        self,
        redis_url: str,
        workdir: Path,
        env: dict[str, str] | None = None,
        root: Path = ROOT,
        inherit_env: bool = True,
        start_timeout: float = 30,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.root = root
        self.start_timeout = start_timeout
        workdir.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, "PROGRESS_HOST": "127.0.0.1"} if inherit_env else {}
        self.env = {**base, "REDIS_URL": redis_url, "PORT": str(self.port), **(env or {})}
        self.commands = procfile(root)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> Service:
        for name in names or ("web", "ingest", "render", "notify", "beat"):
            log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
            self.procs[name] = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {self.commands[name]}"],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop it and its children by PID
            )
        if "web" in self.procs and (not names or "web" in names):
            try:
                wait_until(self._answers, self.start_timeout, what="the web process to answer")
            except AssertionError:  # a fixture that fails here never reaches its teardown
                self.stop()
                raise
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/progress/jobs", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def get(self, endpoint: str, **params) -> requests.Response:
        return requests.get(f"{self.url}/progress/{endpoint}", params=params, timeout=30)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")
