"""Strict parsing of request parameters: the query string and a form body, decoded the way a
browser's form is, then checked against the API's rules. Every failure is a 4xx naming the
parameter and the rule."""

from __future__ import annotations

import json
import math
import re
from urllib.parse import unquote_to_bytes

import falcon

from domain.hooks import notify_refusal
from tasks.settings import Settings

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tabs and newlines are allowed in text
_FORM = "application/x-www-form-urlencoded"
MAX_NUMBER = 1e15
MAX_FIELDS = 32
MAX_BATCH = 10_000  # updates in one JSON POST


def read_params(req: falcon.Request, settings: Settings) -> dict[str, str]:
    """All parameters of a GET query or a POST form, each given at most once, as valid UTF-8."""
    raw = req.query_string.encode("latin-1")  # WSGI hands over the raw bytes as latin-1
    if req.method == "POST" and req.content_type and req.content_type.startswith(_FORM):
        body = _read_body(req, settings)
        raw = raw + b"&" + body if raw else body
    fields = [f for f in raw.split(b"&") if f]
    if len(fields) > MAX_FIELDS:
        raise falcon.HTTPBadRequest(
            title="Too many parameters", description=f"at most {MAX_FIELDS} parameters are read"
        )
    params: dict[str, str] = {}
    for field in fields:
        name_raw, _, value_raw = field.partition(b"=")
        name = _unquote(name_raw).decode("utf-8", "replace")
        value_bytes = _unquote(value_raw)
        if name in params:
            raise falcon.HTTPInvalidParam("it may be given only once", name)
        try:
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise falcon.HTTPInvalidParam("it must be valid UTF-8", name) from exc
        params[name] = value
    return params


def read_json_updates(req: falcon.Request, settings: Settings) -> list[dict[str, str]]:
    """A JSON array of update objects, each turned into parameters like a query's."""
    body = _read_body(req, settings)
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise falcon.HTTPBadRequest(
            title="Invalid JSON", description=f"the body is not valid JSON: {exc}"
        ) from exc
    except RecursionError as exc:  # e.g. 100,000 '[': the parser recurses once per level
        raise falcon.HTTPBadRequest(
            title="Invalid JSON", description="the body nests arrays or objects too deeply"
        ) from exc
    if not isinstance(items, list) or not items:
        raise falcon.HTTPBadRequest(
            title="Invalid JSON", description="the body must be a non-empty array of updates"
        )
    if len(items) > MAX_BATCH:
        raise falcon.HTTPContentTooLarge(
            description=f"a batch may hold at most {MAX_BATCH} updates"
        )
    return [_item_params(i, item) for i, item in enumerate(items)]


def _item_params(index: int, item) -> dict[str, str]:
    if not isinstance(item, dict):
        raise falcon.HTTPBadRequest(
            title="Invalid JSON", description=f"update [{index}] must be an object"
        )
    params = {}
    for name, value in item.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, (int, float, str)):
            value = str(value)
        else:
            raise falcon.HTTPBadRequest(
                title="Invalid parameter",
                description=f"update [{index}]: {name!r} must be a string or a number",
            )
        params[name] = value
    return params


def _read_body(req: falcon.Request, settings: Settings) -> bytes:
    body = req.bounded_stream.read(settings.max_body_bytes + 1)
    if len(body) > settings.max_body_bytes:
        raise falcon.HTTPContentTooLarge(
            description=f"the body may be at most {settings.max_body_bytes} bytes"
        )
    return body


def _unquote(raw: bytes) -> bytes:
    if b"%" not in raw and b"+" not in raw:
        return raw  # the common case (w17, 42, bench3): nothing to decode
    return unquote_to_bytes(raw.replace(b"+", b" "))


def text(
    params: dict[str, str], name: str, limit: int, *, required: bool = False, default: str = ""
) -> str:
    value = params.get(name)
    if value is None or (required and value == ""):
        if required:
            raise falcon.HTTPMissingParam(name)
        return default
    if len(value) > limit:
        raise falcon.HTTPInvalidParam(f"it may be at most {limit} characters long", name)
    if _CONTROL.search(value):
        raise falcon.HTTPInvalidParam("it must not contain NUL or control characters", name)
    return value


def identifier(params: dict[str, str], name: str, settings: Settings) -> str:
    """A job or worker id: any non-empty string, treated as opaque."""
    value = text(params, name, settings.max_id_length, required=True)
    if "\t" in value or "\n" in value or "\r" in value:
        raise falcon.HTTPInvalidParam("it must not contain tabs or line breaks", name)
    return value


def number(
    params: dict[str, str],
    name: str,
    *,
    default: float | None = None,
    minimum: float = -MAX_NUMBER,
    maximum: float = MAX_NUMBER,
    strictly_above: bool = False,
) -> float:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise falcon.HTTPMissingParam(name)
        return default
    value = _finite(raw, name)
    if value > maximum:
        raise falcon.HTTPInvalidParam(f"it must be at most {maximum:g}", name)
    if value < minimum or (strictly_above and value == minimum):
        rule = ">" if strictly_above else ">="
        raise falcon.HTTPInvalidParam(f"it must be {rule} {minimum:g}", name)
    return value


def flag(params: dict[str, str], name: str) -> bool:
    """The guide's `ok`: false only when given and equal to zero."""
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return True
    word = raw.strip().lower()
    if word in ("true", "yes"):
        return True
    if word in ("false", "no"):
        return False
    return _finite(word, name, " (0 means failed)") != 0


def _finite(raw: str, name: str, note: str = "") -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise falcon.HTTPInvalidParam(f"it must be a number{note}", name) from exc
    if not math.isfinite(value):
        raise falcon.HTTPInvalidParam(f"it must be a finite number{note}", name)
    return value


def notify_url(params: dict[str, str], settings: Settings) -> str:
    """create's completion hook: an http(s) URL on a host the operator allowed."""
    url = text(params, "notify", 2048)
    if not url:
        return ""
    reason = notify_refusal(url, settings.notify_allowed)
    if reason:
        raise falcon.HTTPInvalidParam(reason, "notify")
    return url
