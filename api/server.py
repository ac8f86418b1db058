"""waitress as this service runs it: raw UTF-8 in a request line is read as UTF-8, and every
request waitress refuses by itself (a bad request line or header, a body or headers too large)
is answered in the app's JSON error shape and written to the request log like any other."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import unquote_to_bytes

import falcon
import waitress
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import (
    BadRequest,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    ServerNotImplemented,
)

from api.operations import RequestLog
from tasks.settings import Settings

_NON_ASCII = re.compile(rb"[\x80-\xff]")


def create_server(app, sock: socket.socket, options: dict, settings: Settings, log: RequestLog):
    """A waitress server for the app on the socket, with this module's parser and refusals."""
    server = waitress.create_server(app, sockets=[sock], **options)
    # waitress makes one channel per connection from this attribute: the seam it offers for
    # its parser and its error task (one socket: the server is a single TcpWSGIServer).
    attributes = {"settings": settings, "request_log": log}
    server.channel_class = type("ProgressChannel", (ProgressChannel,), attributes)
    return server


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
