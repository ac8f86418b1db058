"""REDIS_URL, read once: a plain Redis (redis://, rediss://, unix://) or a master watched by Redis
Sentinel (redis+sentinel://), and how the data side and Celery each reach it.

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]

lists the sentinels' addresses; the password is the data Redis's (the master's and replicas'),
and sentinels that require a password of their own get PROGRESS_SENTINEL_PASSWORD. The data side
asks the sentinels for the master on every new connection (redis-py's Sentinel.master_for), so
it follows a promotion; Celery gets kombu's spelling of the same set-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def sentinel_address(url: str) -> SentinelAddress | None:
    """The Sentinel set-up a REDIS_URL names, or None for a plain Redis. A URL of neither kind
    raises ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in (*SENTINEL_SCHEMES, *PLAIN_SCHEMES):
        raise ValueError(
            f"REDIS_URL {redact(url)!r}: use redis://, rediss://, unix:// or "
            "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
        )
    if scheme.lower() not in SENTINEL_SCHEMES:
        return None
    credentials, _, hosts_and_path = rest.rpartition("@")
    hosts, _, path = hosts_and_path.partition("/")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"REDIS_URL {redact(url)!r}: name the master: .../MASTER_NAME[/DB]")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(
            f"REDIS_URL {redact(url)!r}: the database after the master's name is a number"
        )
    sentinels = tuple(_host_port(h, url) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError(f"REDIS_URL {redact(url)!r}: list at least one sentinel as HOST:PORT")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    return SentinelAddress(
        sentinels=sentinels,
        master_name=unquote(parts[0]),
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(text: str, url: str) -> tuple[str, int]:
    split = urlsplit(f"//{text.strip()}")
    try:
        port = split.port or DEFAULT_SENTINEL_PORT
    except ValueError:
        raise ValueError(f"REDIS_URL {redact(url)!r}: bad sentinel port in {text!r}") from None
    if not split.hostname:
        raise ValueError(f"REDIS_URL {redact(url)!r}: no host in {text!r}")
    return split.hostname, port


def broker_url(url: str) -> str:
    """kombu's spelling of REDIS_URL: redis+socket:// for a socket, and for Sentinel one
    sentinel:// URL per sentinel, joined with ';' (the master's name is a transport option)."""
    address = sentinel_address(url)
    if address is not None:
        auth = ""
        if address.password:
            auth = f"{_quote(address.username or '')}:{_quote(address.password)}@"
        return ";".join(
            f"sentinel://{auth}{_bracketed(host)}:{port}/{address.db}"
            for host, port in address.sentinels
        )
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        return f"redis+socket://{path}" + (f"?{query}" if query else "")
    return url


def sentinel_transport_options(url: str, sentinel_password: str, timeout: float) -> dict:
    """The broker transport options a Sentinel REDIS_URL adds (none for a plain Redis)."""
    address = sentinel_address(url)
    if address is None:
        return {}
    return {
        "master_name": address.master_name,
        "sentinel_kwargs": sentinel_connection_kwargs(sentinel_password, timeout),
    }


def sentinel_connection_kwargs(sentinel_password: str, timeout: float) -> dict:
    """How to talk to the sentinels themselves."""
    kwargs: dict = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if sentinel_password:
        kwargs["password"] = sentinel_password
    return kwargs


def redact(url: str) -> str:
    """The URL with its password, if any, replaced: for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{hosts}"


def _quote(text: str) -> str:
    return quote(text, safe="")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
