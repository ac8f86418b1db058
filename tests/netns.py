"""A throwaway network of "hosts" made of Linux network namespaces, for multi-host tests.

One namespace holds a bridge and nothing else (so the root namespace gets no interface, route or
address); every host is a namespace of its own, joined to the bridge by a veth pair created
directly in the two namespaces. Names carry a random suffix and the subnet is a random
10.x.y.0/24, so concurrent runs cannot collide. A host has one route, to that subnet, and no
default route: whatever runs in it can reach the other hosts and nothing else.

`Network.destroy()` stops every process started through it (by process group), kills anything
still left inside its namespaces, and deletes the namespaces (which deletes their veth ends).
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip") or next(
    (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), ""
)


def available() -> str | None:
    """Why namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if not IP:
        return "the `ip` command (iproute2) is not installed"
    return None


def ip(*args: str, timeout: float = 10) -> str:
    done = subprocess.run(
        [IP, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    name: str  # role, e.g. "redis"
    ns: str  # namespace name
    addr: str  # its address on the test subnet

    def argv(self, *command: str) -> list[str]:
        """`command` run inside this host's namespace."""
        return [IP, "netns", "exec", self.ns, *command]


@dataclass
class Process:
    name: str
    host: Host
    popen: subprocess.Popen
    log: Path


@dataclass
class Network:
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(
            f"10.{random.randrange(1, 255)}.{random.randrange(0, 256)}.0/24"
        )
    )
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)  # every one created, bridge first

    @property
    def bridge_ns(self) -> str:
        return f"mh{self.suffix}-bridge"

    @property
    def bridge(self) -> str:
        return f"br{self.suffix}"

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def create_bridge(self) -> None:
        self._add_namespace(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", self.bridge, "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        """A namespace joined to the bridge, with the next address of the subnet."""
        if not self.namespaces:
            self.create_bridge()
        index = len(self.hosts)
        ns = f"mh{self.suffix}-{name}"
        addr = str(self.subnet.network_address + 10 + index)
        outer = f"v{index}{self.suffix}"  # in the bridge's namespace, at most 15 characters
        inner = f"eth{self.suffix}"  # in the host's namespace
        self._add_namespace(ns)
        ip(
            "link", "add", outer, "netns", self.bridge_ns,
            "type", "veth", "peer", "name", inner, "netns", ns,
        )  # fmt: skip
        ip("-n", self.bridge_ns, "link", "set", outer, "master", self.bridge)
        ip("-n", self.bridge_ns, "link", "set", outer, "up")
        ip("-n", ns, "addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", inner)
        ip("-n", ns, "link", "set", inner, "up")
        host = Host(name, ns, addr)
        self.hosts[name] = host
        return host

    def routes(self, host: Host) -> list[str]:
        return [line for line in ip("-n", host.ns, "route", "show").splitlines() if line.strip()]

    def start(
        self, name: str, host: Host, command: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> Process:
        """Start `command` in `host`'s namespace, in a session (process group) of its own, its
        output appended to `log`."""
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                host.argv(*command),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, host, popen, log)
        self.processes.append(process)
        return process

    def kill(self, process: Process, sig: int = signal.SIGKILL, timeout: float = 15) -> None:
        """Signal the process's whole group; SIGKILL it if it outlives `timeout`."""
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(process.popen.pid, s)
            except ProcessLookupError:
                pass
            try:
                process.popen.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        if process in self.processes:
            self.processes.remove(process)

    def destroy(self) -> None:
        """Stop everything started here and delete every namespace created; never raises."""
        for process in list(self.processes):
            try:
                self.kill(process, signal.SIGTERM, timeout=10)
            except Exception:
                pass
        for ns in reversed(self.namespaces):
            self._kill_leftovers(ns)
            try:
                ip("netns", "del", ns)
            except Exception:
                pass
        self.namespaces.clear()
        self.hosts.clear()

    def _kill_leftovers(self, ns: str) -> None:
        """Anything still running in one of our namespaces (a child that left its group)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pids = [int(p) for p in ip("netns", "pids", ns).split()]
            except Exception:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
