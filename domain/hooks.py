"""The completion hook's rules: where it may send (checked when a job is created and again when
it sends), how a message is signed (Standard Webhooks, https://www.standardwebhooks.com), and
the job's own proof in it (job_mac), which only the holder of the job's secret can compute."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
KEY_PREFIX = "whsec_"  # Standard Webhooks' spelling of a key: whsec_ and the key's base64


def allowed_addresses(allowed: frozenset[str]) -> frozenset[tuple[str, int | None]]:
    """PROGRESS_NOTIFY_HOSTS's entries as (host, port): port None for a host listed alone.
    An entry that is not `host` or `host:port` (`[v6]:port` for IPv6) allows nothing."""
    pairs = set()
    for entry in allowed:
        try:
            parts = urlsplit(f"//{entry.strip()}")
            port = parts.port
        except ValueError:
            continue
        if parts.hostname and not parts.username and parts.path == "":
            pairs.add((parts.hostname.lower(), port))
    return frozenset(pairs)


def notify_refusal(url: str, allowed: frozenset[str]) -> str | None:
    """Why the hook may not call `url` (None: it may): an http(s) URL on a host the operator
    listed in PROGRESS_NOTIFY_HOSTS, on the port listed with it (`host:port`), or, for a host
    listed alone, on the scheme's default port (80 for http, 443 for https)."""
    if not allowed:
        return "this server sends no notifications (PROGRESS_NOTIFY_HOSTS is empty)"
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracket without its pair
        return "it must be an http or https URL"
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return "it must be an http or https URL"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = DEFAULT_PORTS[parts.scheme]
    elif not 0 < port < 65536:
        return "its port must be a number from 1 to 65535"
    host = parts.hostname.lower()
    pairs = allowed_addresses(allowed)
    if (host, port) in pairs or (port == DEFAULT_PORTS[parts.scheme] and (host, None) in pairs):
        return None
    if any(h == host for h, _ in pairs):
        return (
            f"port {port} of host {host!r} is not among those this server may notify "
            "(PROGRESS_NOTIFY_HOSTS: host:port allows that port, a host alone only 80 for http "
            "and 443 for https)"
        )
    return f"host {host!r} is not among those this server may notify (PROGRESS_NOTIFY_HOSTS)"


def signing_key(key: str) -> bytes:
    """The HMAC key of a Standard Webhooks key: base64, with or without the whsec_ prefix (as
    Standard Webhooks' libraries read it). ValueError if it is not base64 or is empty."""
    text = key.strip().removeprefix(KEY_PREFIX)
    try:
        secret = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("PROGRESS_NOTIFY_KEY must be whsec_ followed by base64") from None
    if not secret:
        raise ValueError("PROGRESS_NOTIFY_KEY is empty")
    return secret


def new_key(random_bytes: bytes) -> str:
    """A key in Standard Webhooks' spelling, from 24 to 64 random bytes."""
    return KEY_PREFIX + base64.b64encode(random_bytes).decode()


def sign(key: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery of `body`: webhook-id (the message's,
    the same on every retry), webhook-timestamp (Unix seconds of this attempt) and
    webhook-signature, v1, followed by the base64 of HMAC-SHA256(key, "id.timestamp.body")."""
    content = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(signing_key(key), content, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def job_mac(secret: str, jobid: str) -> str:
    """The hook document's proof that the job is its owner's: hex HMAC-SHA256 of the job id,
    keyed by the job's secret (both UTF-8). The service's signature says only that the service
    sent the document; anyone may create a job of any id with a hook, but not with this."""
    return hmac.new(secret.encode(), jobid.encode(), hashlib.sha256).hexdigest()


def stored_hook(url: str, mac: str) -> str:
    """What a job keeps of its hook, in one field: where to send, and its job_mac."""
    return json.dumps({"url": url, "job_mac": mac}, separators=(",", ":"))


def hook_of(stored: str) -> tuple[str, str | None]:
    """(url, job_mac) of what stored_hook kept; a plain URL, as kept before job_mac was, has
    none (such a job was created by an earlier version, with or without a secret)."""
    if not stored.startswith("{"):
        return stored, None
    hook = json.loads(stored)
    return hook["url"], hook["job_mac"]
