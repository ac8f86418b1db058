"""waitress as this service runs it: raw UTF-8 in a request line is read as UTF-8, and every
request waitress refuses by itself (a bad request line or header, a body or headers too large)
is answered in the app's JSON error shape and written to the request log like any other.

Connections are admitted so that idle or slow ones cost memory, not availability: one client
address may hold at most PROGRESS_WEB_CONNECTIONS_PER_ADDRESS of a process's connections (past
it a new one is closed at once, so the process never reaches its connection limit on one
client's account and stops accepting everybody's), and a connection has
PROGRESS_WEB_HEADER_TIMEOUT seconds to send a request's line and headers, while an idle
keep-alive between requests may wait PROGRESS_WEB_CHANNEL_TIMEOUT."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections import Counter
from urllib.parse import unquote_to_bytes

import falcon
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import (
    BadRequest,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    ServerNotImplemented,
)

from api.operations import RequestLog
from tasks.settings import Settings

_NON_ASCII = re.compile(rb"[\x80-\xff]")
ACCEPTS_PER_WAKE = 64
REFUSALS_LOGGED_EVERY = 10.0  # seconds: a flood of refused connections logs a line, not each

log = logging.getLogger("progress.web")


def create_server(app, sock: socket.socket, options: dict, settings: Settings, log: RequestLog):
    """A waitress server for the app on the socket, with this module's parser and refusals."""
    server = ProgressServer(app, sock, Adjustments(sockets=[sock], **options), settings)
    # waitress makes one channel per connection from this attribute: the seam it offers for
    # its parser and its error task.
    attributes = {"settings": settings, "request_log": log}
    server.channel_class = type("ProgressChannel", (ProgressChannel,), attributes)
    return server


def client_key(host: str) -> str:
    """The client a connection is counted against: its IPv4 address, or its IPv6 /64 (one
    subscriber's block: an IPv6 client has a whole /64 to choose addresses from)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ProgressServer(TcpWSGIServer):
    """waitress's server for one listening TCP socket (what waitress.create_server builds for
    it), admitting connections per client and closing those slow to send a request (the
    module's docstring)."""

    def __init__(self, app, sock: socket.socket, adj: Adjustments, settings: Settings) -> None:
        self.per_client = settings.web_connections_per_address  # 0: no limit
        self.header_timeout = settings.web_header_timeout
        self.open_by_client: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._refused, self._refusals_logged = 0, -REFUSALS_LOGGED_EVERY
        tasks = ThreadedTaskDispatcher()
        tasks.set_thread_count(adj.threads)
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        super().__init__(
            app, {}, _sock=sock, dispatcher=tasks, adj=adj, bind_socket=False, sockinfo=sockinfo
        )

    def handle_accept(self) -> None:
        """Accept what is waiting, up to ACCEPTS_PER_WAKE and the connection limit: waitress
        accepts one connection per pass of its loop, and a pass visits every connection, so a
        flood would take minutes to drain (and refuse)."""
        for _ in range(ACCEPTS_PER_WAKE):
            if len(self._map) >= self.adj.connection_limit:
                return
            try:
                accepted = self.accept()
            except OSError:  # out of descriptors, say: the next pass tries again
                return
            if accepted is None:  # nothing more is waiting
                return
            conn, addr = accepted
            try:
                self.set_socket_options(conn)
            except OSError:  # the client has gone already: nothing to serve
                conn.close()
                continue
            client = client_key(addr[0])
            if self.per_client and self.open_by_client[client] >= self.per_client:
                conn.close()  # at once: the slot is another client's
                self._log_refusal(client)
                continue
            self.channel_class(self, conn, addr, self.adj, map=self._map)

    def opened(self, client: str) -> None:
        with self._count_lock:
            self.open_by_client[client] += 1

    def closed(self, client: str) -> None:
        with self._count_lock:
            self.open_by_client[client] -= 1
            if self.open_by_client[client] <= 0:
                del self.open_by_client[client]

    def maintenance(self, now: float) -> None:
        """waitress closes connections idle for channel_timeout; this also closes those that
        have not sent a whole request line and headers within header_timeout."""
        super().maintenance(now)
        cutoff = now - self.header_timeout
        for channel in self.active_channels.values():
            began = channel.request_began
            if began is not None and began < cutoff and not channel.requests:
                channel.will_close = True

    def _log_refusal(self, client: str) -> None:
        """A line at most every REFUSALS_LOGGED_EVERY seconds: the client refused now, and how
        many connections were refused since the last line."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusals_logged >= REFUSALS_LOGGED_EVERY:
            log.warning(
                "event=connections_refused client=%s refused=%d limit=%d setting=%s",
                client,
                self._refused,
                self.per_client,
                "PROGRESS_WEB_CONNECTIONS_PER_ADDRESS",
            )
            self._refused, self._refusals_logged = 0, now


class Utf8RequestParser(HTTPRequestParser):
    """waitress splits the request target with urlsplit on ASCII and refuses any other byte
    with a plain-text `400 Bad URI`, but curl sends `desc=café` (and the guide's mis-printed
    `¤t=`) as raw UTF-8. Each such byte is percent-encoded first, which decodes to the same
    byte: the app then reads the query as UTF-8 and names a parameter that is not."""

    def parse_header(self, header_plus: bytes) -> None:
        line, crlf, rest = header_plus.partition(b"\r\n")
        line = _NON_ASCII.sub(lambda byte: b"%%%02X" % byte[0][0], line)
        super().parse_header(line + crlf + rest)


class JsonRefusal(ErrorTask):
    """waitress's answer to a request it refused, as the app would give it: JSON with `title`
    and `description`, the app's security headers, and a line in the request log."""

    channel: ProgressChannel

    def execute(self) -> None:
        error = _as_http_error(self.request.error, self.channel.settings)
        body = error.to_json()
        self.status = error.status
        self.response_headers.extend(
            [
                ("Content-Type", falcon.MEDIA_JSON),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ]
        )
        self.set_close_on_finish()  # the rest of the stream cannot be trusted to parse
        self.content_length = len(body)
        self.write(body)
        method, path = _method_and_path(self.request)
        elapsed = time.time() - self.start_time
        self.channel.request_log.refused(
            method, path, error.status_code, elapsed, self.channel.addr[0]
        )


class ProgressChannel(HTTPChannel):
    """A connection, parsed and refused as above; create_server gives each server a subclass
    carrying its settings and request log."""

    parser_class = Utf8RequestParser
    error_task_class = JsonRefusal
    settings: Settings
    request_log: RequestLog
    server: ProgressServer
    # When the request now arriving began (a new connection: when it opened); None once its
    # headers are in, and while idle between requests. ProgressServer.maintenance reads it.
    request_began: float | None = None
    client = ""

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        super().__init__(server, sock, addr, adj, map=map)
        self.request_began = self.creation_time
        self.client = client_key(addr[0])
        server.opened(self.client)

    def received(self, data: bytes) -> bool:
        handled = super().received(data)
        if self.request is None or self.request.headers_finished:
            self.request_began = None
        elif self.request_began is None:  # the first bytes of a request after an idle spell
            self.request_began = time.time()
        return handled

    def del_channel(self, map=None) -> None:
        """waitress's hook for a connection that closes (once: the client is counted once)."""
        if self.client:
            self.server.closed(self.client)
            self.client = ""
        super().del_channel(map)


def _as_http_error(error, settings: Settings) -> falcon.HTTPError:
    """The app's own error for what waitress refused, with the limit that was passed."""
    if isinstance(error, RequestEntityTooLarge):  # the same words as the app's own 413
        return falcon.HTTPContentTooLarge(
            description=f"the body may be at most {settings.max_body_bytes} bytes"
        )
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return falcon.HTTPRequestHeaderFieldsTooLarge(
            description=f"the request line and headers may be at most "
            f"{settings.web_max_request_header_size} bytes together; send long parameters "
            "as a POST form body"
        )
    if isinstance(error, ServerNotImplemented):
        return falcon.HTTPNotImplemented(description=error.body)
    if isinstance(error, BadRequest):
        return falcon.HTTPBadRequest(
            title="Malformed request", description=f"this is not a valid HTTP request: {error.body}"
        )
    return falcon.HTTPInternalServerError()


def _method_and_path(request: HTTPRequestParser) -> tuple[str, str]:
    """The request line's method and path, as far as waitress read it; never the query, which
    may hold a secret."""
    if isinstance(request.error, RequestHeaderFieldsTooLarge):
        line = request.header_plus  # waitress parsed a stand-in line: this is what arrived
    else:
        line = getattr(request, "first_line", b"")
    method, _, rest = line.partition(b"\r\n")[0].partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    return method.decode("latin-1"), unquote_to_bytes(target).decode("utf-8", "replace")
