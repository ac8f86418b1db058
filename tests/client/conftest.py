"""Fixtures for the client tests: real local servers that misbehave on purpose (down, silent,
failing), a fresh background sender per test, and a poll helper for the live service."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from progress_client import _sender

from tests.harness import wait_until

# (params, index of this request) -> (status, headers, JSON body)
Responder = Callable[[dict, int], tuple]


def accept_all(params: dict, index: int) -> tuple:
    return 202, {}, {"accepted": True}


class RecordingServer:
    """A real HTTP server on 127.0.0.1 that records every request and answers from a script."""

    def __init__(self, responder: Responder = accept_all) -> None:
        self.responder = responder
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real server

            def do_GET(self) -> None:
                self._handle(urlsplit(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    self._handle("", batch=json.loads(body))
                else:
                    self._handle(body)

            def _handle(self, query: str, batch: list | None = None) -> None:
                """A batched POST is recorded as one request per item, each with its batch's
                size, so `updates()` lists every state whichever way it came."""
                params = dict(parse_qsl(query, keep_blank_values=True))
                items = [params] if batch is None else batch
                with server.lock:
                    index = len(server.requests)
                    for item in items:
                        server.requests.append(
                            {
                                "method": self.command,
                                "path": urlsplit(self.path).path,
                                "batch": 0 if batch is None else len(batch),
                                **item,
                            }
                        )
                status, headers, body = server.responder(params, index)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def updates(self, workid: str | None = None) -> list[dict]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r["path"] == "/progress/update" and (workid is None or r["workid"] == workid)
            ]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def fresh_sender():
    """Each test gets its own sender thread, so no queue leaks from one test into the next."""
    _sender.reset()
    yield
    _sender.reset()


@pytest.fixture
def make_server():
    servers: list[RecordingServer] = []

    def make(responder: Responder = accept_all) -> RecordingServer:
        servers.append(RecordingServer(responder))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def dead_url() -> str:
    """A local port with nothing listening: every connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url():
    """A server that accepts connections and never answers: every request times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture
def live_url(live_service) -> str:
    return live_service.url


@pytest.fixture
def unique_jobid() -> str:
    # Characters the guide's users put in ids, which must survive URL encoding both ways.
    return f"client test/{uuid.uuid4().hex[:8]}: a+b,c ünï"


def eventually(predicate: Callable, timeout: float = 30.0, what: str = "condition"):
    """Poll until predicate() returns something truthy; return it, or fail after `timeout`."""
    return wait_until(predicate, timeout, interval=0.1, what=what)
