"""One address holding thousands of idle connections, and some that sent half a request, to
the real web tier (`python -m api`, two waitress processes): another address's updates, each on
a new connection as curl, the MWA scripts and the CLI make them, are still answered. Before
PROGRESS_WEB_CONNECTIONS_PER_ADDRESS they waited in the kernel's backlog behind the flood until
the idle ones timed out (10-20 s and more). And a connection that has not sent its headers
within PROGRESS_WEB_HEADER_TIMEOUT is closed, while an idle keep-alive may wait longer."""

from __future__ import annotations

import contextlib
import errno
import http.client
import resource
import socket
import time

import pytest
import requests

from api.server import client_key
from tasks.settings import Settings
from tests.harness import RedisServer, Service

FLOODER = "127.0.0.2"  # another loopback address: the service sees another client
DEFAULTS = Settings()
# Past what the web processes can hold together, so that without a limit per address the
# updates' connections would wait in the backlog behind the flood.
IDLE = max(3000, DEFAULTS.web_processes * DEFAULTS.web_connection_limit + 1000)
HALF_SENT, UPDATES = 200, 20
HALF_REQUEST = b"POST /progress/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 90\r\n"


@pytest.fixture
def descriptors():
    """The flood's sockets need more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    available = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if available < IDLE + HALF_SENT + 500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {available} is too low for the flood")
    resource.setrlimit(resource.RLIMIT_NOFILE, (available, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def start_service(tmp_path):
    """Starts web and ingest as the Procfile runs them, with more PROGRESS_* variables; stops
    them and their Redis afterwards."""
    redis = RedisServer(tmp_path / "redis").start()
    started: list[Service] = []

    def start(**env: str) -> Service:
        env = {"PROGRESS_CREATE_RATE_LIMIT": "0", **env}
        started.append(Service(redis.url, tmp_path / "service", env))
        return started[-1].start("web", "ingest")

    try:
        yield start
    finally:
        for service in started:
            service.stop()
        redis.stop()


def open_from(address: str, port: int, first_bytes: bytes = b"") -> socket.socket:
    """A connection from `address` that sends `first_bytes` and then nothing. Not waiting for
    the handshake: past the kernel's backlog a connect would block on SYN retries."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.setblocking(False)
    code = sock.connect_ex(("127.0.0.1", port))
    assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code, code)
    if first_bytes:
        with contextlib.suppress(OSError):  # not connected yet, or closed by the server
            sock.send(first_bytes)
    return sock


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_updates_on_new_connections_are_answered_while_one_address_holds_thousands(
    start_service, descriptors, jobid
):
    service = start_service()
    assert service.get("create", jobid=jobid).status_code == 200
    flood: list[socket.socket] = []
    try:
        flood += [open_from(FLOODER, service.port) for _ in range(IDLE)]
        flood += [open_from(FLOODER, service.port, HALF_REQUEST) for _ in range(HALF_SENT)]
        time.sleep(1)  # the web processes take what they accept of the flood

        latencies = []
        for i in range(UPDATES):
            params = {"jobid": jobid, "workid": f"w{i}", "current": "1", "total": "2"}
            started = time.monotonic()
            # No session: a new connection each time. A generous timeout, not a speed target
            # (bench/fair_connections.py measures that).
            resp = requests.get(f"{service.url}/progress/update", params=params, timeout=5)
            latencies.append(time.monotonic() - started)
            assert resp.status_code == 202, resp.text
        print(f"updates beside the flood: max {max(latencies) * 1000:.0f} ms")
    finally:
        for sock in flood:
            sock.close()
    log = service.log("web")
    assert "event=connections_refused client=127.0.0.2" in log
    assert "Traceback" not in log and "web_process_exited" not in log, log[-3000:]


def live(sock: socket.socket) -> int:
    """GET /livez on the connection, its response read whole: the status."""
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.settimeout(5)
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    resp.read()
    return resp.status


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (it sends nothing first)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_request_slow_to_send_its_headers_is_closed_an_idle_keep_alive_is_not(start_service):
    service = start_service(PROGRESS_WEB_HEADER_TIMEOUT="2", PROGRESS_WEB_CHANNEL_TIMEOUT="60")
    address = ("127.0.0.1", service.port)
    with (
        socket.create_connection(address) as silent,
        socket.create_connection(address) as half_sent,
        socket.create_connection(address) as keep_alive,
    ):
        half_sent.sendall(HALF_REQUEST)
        assert live(keep_alive) == 200
        # Both closed within the header timeout and the second maintenance takes to notice,
        # far below the channel timeout of 60 s that closed them before.
        assert closed_within(silent, 20)
        assert closed_within(half_sent, 20)
        # The keep-alive has been idle for longer than the header timeout, and still serves.
        assert not closed_within(keep_alive, 1)
        assert live(keep_alive) == 200


def test_connections_are_counted_per_ipv4_address_and_ipv6_64():
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"PROGRESS_WEB_CONNECTIONS_PER_ADDRESS": "-1"}, "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS"),
        (  # at the connection limit, one address could still fill the process
            {"PROGRESS_WEB_CONNECTION_LIMIT": "50", "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS": "50"},
            "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS",
        ),
        ({"PROGRESS_WEB_HEADER_TIMEOUT": "0"}, "PROGRESS_WEB_HEADER_TIMEOUT"),
    ],
)
def test_limits_that_cannot_work_are_refused(env, variable):
    with pytest.raises(ValueError, match=variable):
        Settings.from_env(env)
