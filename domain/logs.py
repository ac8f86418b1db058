"""One log format for every process (web, Celery workers, beat): logfmt lines that start with
an RFC 3339 UTC timestamp, `ts=2026-11-29T10:01:02.345Z level=info logger=progress.web msg=...`,
one line per record whatever the message holds, so that logfmt parsers (Loki, Vector, hl) read
them and a value with a newline or a quote cannot forge a line or a field."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# A value written without quotes: no space, quote, `=` or backslash, and printable.
_BARE = re.compile(r'[^\s"=\\]+')
# A message that is already logfmt pairs, `event=NAME key=value ...` (values bare or quoted).
_PAIR = r'[A-Za-z_][\w.]*=(?:"(?:[^"\\\n]|\\.)*"|[^\s"=\\]*)'
_STRUCTURED = re.compile(rf"event=(?P<event>[^\s\"=\\]+)(?: {_PAIR})*")

_second_cache: tuple[int, str] = (0, "")


def quote(value: object) -> str:
    """A logfmt value: bare when it can be, else JSON-quoted (escapes newlines and quotes)."""
    text = str(value)
    if _BARE.fullmatch(text) and text.isprintable():
        return text
    return quoted(text)


def quoted(value: object) -> str:
    """A logfmt value always in quotes (paths, so that they read the same in every line).
    Non-ASCII is escaped too: U+2028 or U+0085 would break a line for some log readers."""
    return json.dumps(str(value))


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-29T10:01:02.345Z (the second's part
    formatted once per second: the request log calls this for every request)."""
    global _second_cache
    now = time.time() if seconds is None else seconds
    second = int(now)
    cached = _second_cache  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _second_cache = cached
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def line(level: str, logger: str, msg: str, **fields: object) -> str:
    """One log line (without its newline), for callers that write their own lines."""
    pairs = "".join(f" {key}={quote(value)}" for key, value in fields.items())
    return f"ts={timestamp()} level={level} logger={logger} msg={quote(msg)}{pairs}"


class LogfmtFormatter(logging.Formatter):
    """A record as one logfmt line. A message written as pairs (`event=notify_sent job="x"`)
    keeps its pairs, with msg= its event; any other message is one quoted msg= value; a
    traceback goes in exc=, its newlines escaped."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        head = (
            f"ts={timestamp(record.created)} level={record.levelname.lower()} "
            f"logger={quote(record.name)}"
        )
        structured = _STRUCTURED.fullmatch(message)
        text = (
            f"{head} msg={structured['event']} {message}"
            if structured
            else (f"{head} msg={quote(message)}")
        )
        if record.exc_info:
            text += f" exc={quote(self.formatException(record.exc_info))}"
        if record.stack_info:
            text += f" stack={quote(self.formatStack(record.stack_info))}"
        return text


def setup(level: int | str = logging.INFO, stream=None) -> None:
    """Send every logger's records (waitress's, Celery's, warnings) through one handler on
    stderr in this format, replacing whatever handlers the root logger had."""
    handler = logging.StreamHandler(stream or sys.__stderr__)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
