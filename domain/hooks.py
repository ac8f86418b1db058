"""Where the completion hook may send: checked when a job is created and again when it sends."""

from __future__ import annotations

from urllib.parse import urlsplit


def notify_refusal(url: str, allowed: frozenset[str]) -> str | None:
    """Why the hook may not call `url` (None: it may): an http(s) URL on a host the operator
    listed in PROGRESS_NOTIFY_HOSTS, as `host` or `host:port`."""
    if not allowed:
        return "this server sends no notifications (PROGRESS_NOTIFY_HOSTS is empty)"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http or https URL"
    host = parts.hostname.lower()
    if host not in allowed and parts.netloc.lower() not in allowed:
        return f"host {host!r} is not among those this server may notify (PROGRESS_NOTIFY_HOSTS)"
    return None
