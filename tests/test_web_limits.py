"""The web process (`python -m api` from the Procfile, two waitress processes) under a flood of
connections well past its connection limit: idle ones, and ones sending a request a byte at a
time. No server process dies (with select() one did, as soon as a descriptor passed 1023),
ordinary requests succeed promptly once the flood is gone, and a silent connection is closed
after PROGRESS_WEB_CHANNEL_TIMEOUT."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.harness import RedisServer, Service, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SLOW_REQUEST = b"GET /progress/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("limits-redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def descriptors():
    """This process's soft RLIMIT_NOFILE raised to the hard limit for the flood's sockets (the
    web processes it starts inherit it, as they would from a shell with `ulimit -n` raised),
    and put back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    available = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (available, hard))
    yield available
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def children(pid: int) -> set[int]:
    """The processes `pid` has forked (and not yet reaped)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def highest_descriptor(pid: int) -> int:
    try:
        return max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return -1  # gone


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    "connection_limit, connections, channel_timeout, past_1023",
    [
        # 40 x the limit of the two processes together: nearly all wait in the backlog.
        pytest.param(50, 2000, 2, False, id="limit-50"),
        # Both processes full at 1,200 connections each, so each holds descriptors past 1023:
        # what select() cannot watch.
        pytest.param(1200, 2600, 4, True, id="descriptors-past-1023"),
    ],
)
def test_a_connection_flood_past_the_limit_kills_no_web_process(
    redis_url, tmp_path, descriptors, connection_limit, connections, channel_timeout, past_1023
):
    if descriptors < connections + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {descriptors} is too low for the flood")
    env = {
        "PROGRESS_WEB_PROCESSES": "2",
        "PROGRESS_WEB_CONNECTION_LIMIT": str(connection_limit),
        "PROGRESS_WEB_CHANNEL_TIMEOUT": str(channel_timeout),
        # The flood comes from one address, and must reach the connection limit; its slow
        # senders must stay connected while it builds (tests/test_idle_sockets.py tests both).
        "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS": "0",
        "PROGRESS_WEB_HEADER_TIMEOUT": "600",
    }
    service = Service(redis_url, tmp_path, env).start("web")
    flood: list[socket.socket] = []
    try:
        supervisor = service.procs["web"].pid
        servers = wait_until(lambda: len(children(supervisor)) == 2 and children(supervisor), 10)

        # The flood: every connection made (the backlog holds what the servers do not accept),
        # every other one then sends its request a byte at a time, the rest stay silent.
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            sock.setblocking(False)
            flood.append(sock)
        slow = flood[1::2]
        if past_1023:  # each server process holds connections on descriptors past 1023

            def past() -> bool:
                log = service.log("web")[-3000:]
                assert children(supervisor) == servers, f"a web process died:\n{log}"
                return all(highest_descriptor(pid) > 1023 for pid in servers)

            wait_until(past, 30, what="both web processes to hold descriptors past 1023")
        cut_off = 0
        for byte in range(12):  # a byte every 0.25 s: never silent for channel_timeout
            for sock in slow:
                with contextlib.suppress(BlockingIOError):
                    try:
                        sock.send(SLOW_REQUEST[byte : byte + 1])
                    except OSError:
                        cut_off += 1
            time.sleep(0.25)
        assert cut_off == 0, f"{cut_off} sends to a slowly sending client failed"

        # No server process died or was replaced, and the supervisor is still there.
        assert alive(supervisor)
        assert children(supervisor) == servers
        assert all(alive(pid) for pid in servers)
        assert "reached the connection limit" in service.log("web")

        for sock in flood:
            sock.close()
        flood.clear()

        # Ordinary requests succeed promptly once the flood is gone.
        started = time.monotonic()
        for _ in range(10):
            resp = requests.get(f"{service.url}/progress/jobs", timeout=5)
            assert resp.status_code == 200, resp.text
        assert time.monotonic() - started < 5

        # A silent connection is closed by the server after channel_timeout (looked for every
        # channel_timeout / 2): not before, and not much later.
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as idle:
            idle.settimeout(channel_timeout * 3 + 10)
            opened = time.monotonic()
            try:
                assert idle.recv(1) == b""
            except ConnectionResetError:
                pass
            waited = time.monotonic() - opened
        assert channel_timeout - 0.5 <= waited <= channel_timeout * 1.5 + 3, waited

        assert children(supervisor) == servers
        log = service.log("web")
        assert "web_process_exited" not in log and "Traceback" not in log, log[-3000:]
    finally:
        for sock in flood:
            sock.close()
        service.stop()


def test_a_body_over_the_limit_is_refused_before_it_is_read(redis_url, tmp_path):
    """waitress refuses it (413) from its Content-Length alone: nothing is buffered or spooled
    to disk. A body of exactly PROGRESS_MAX_BODY_BYTES still reaches the app; so does a request
    line at the longest the parameters allow, while a far longer one gets 431."""
    limit = 4096
    env = {"PROGRESS_WEB_PROCESSES": "1", "PROGRESS_MAX_BODY_BYTES": str(limit)}
    service = Service(redis_url, tmp_path, env).start("web")
    try:
        json_body = {"Content-Type": "application/json"}
        at_limit = b"[" + b" " * (limit - 2) + b"]"
        resp = requests.post(f"{service.url}/progress/update", data=at_limit, headers=json_body)
        assert resp.status_code == 400 and resp.json()["title"] == "Invalid JSON"  # the app's
        over = at_limit + b" "
        resp = requests.post(f"{service.url}/progress/update", data=over, headers=json_body)
        assert resp.status_code == 413  # waitress's, in the app's words (api/server.py)
        assert resp.json()["description"] == f"the body may be at most {limit} bytes"

        widest = "\U0001f600"  # four bytes of UTF-8, twelve characters percent-encoded
        longest = {"jobid": widest * 256, "workid": widest * 256, "desc": widest * 1024}
        resp = service.get("update", current="1", total="2", **longest)
        assert resp.status_code == 404, resp.text  # read (about 18 KB), and no such job
        assert service.get("status", jobid="x" * 100_000).status_code == 431
    finally:
        service.stop()
