"""Every endpoint's parameters as one table, and their strict parsing: the query string and a
form body, decoded the way a browser's form is, then checked against the table's rules. Every
failure is a 4xx naming the parameter and the rule. /openapi.json is built from the same table."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, replace
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

import falcon

from domain.hooks import notify_refusal
from tasks.settings import Settings

# Text may hold tabs and line feeds but no other C0 control character, nor DEL; ids hold none.
# The patterns are ECMA-262 for /openapi.json; Python's re reads the same escapes.
_TEXT_CONTROLS = r"\u0000-\u0008\u000b-\u001f\u007f"
TEXT_PATTERN = f"^[^{_TEXT_CONTROLS}]*$"
ID_PATTERN = r"^[^\u0000-\u001f\u007f]*$"
_CONTROL = re.compile(f"[{_TEXT_CONTROLS}]")
_FORM = "application/x-www-form-urlencoded"
MAX_NUMBER = 1e15
MAX_FIELDS = 32
MAX_BATCH = 10_000  # updates in one JSON POST
FLAG_WORDS = {"true": True, "false": False, "yes": True, "no": False}  # and any number


def read_params(req: falcon.Request, settings: Settings) -> dict[str, str]:
    """All parameters of a GET query or a POST (or DELETE) form, each given at most once, as
    valid UTF-8."""
    raw = req.query_string.encode("latin-1")  # WSGI hands over the raw bytes as latin-1
    if req.method in ("POST", "DELETE") and req.content_type and req.content_type.startswith(_FORM):
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


def read_json_updates(req: falcon.Request, settings: Settings) -> tuple[list[dict[str, Any]], bool]:
    """The updates of a JSON body, each turned into parameters like a query's, and whether it
    was a batch: an array of update objects, or one object whose ids may be in the query
    instead (so an ARP-style script posts {"counters": {...}} to a URL that names its worker).
    An update's `counters` stays as it was posted (api.counters checks it)."""
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
    if isinstance(items, dict):
        return [_object_params(read_params(req, settings), items)], False
    if not isinstance(items, list) or not items:
        raise falcon.HTTPBadRequest(
            title="Invalid JSON",
            description="the body must be an update object or a non-empty array of updates",
        )
    if len(items) > MAX_BATCH:
        raise falcon.HTTPContentTooLarge(
            description=f"a batch may hold at most {MAX_BATCH} updates"
        )
    return [_item_params(i, item) for i, item in enumerate(items)], True


def _object_params(query: dict[str, str], item: dict) -> dict[str, Any]:
    """One update object with the query's parameters (each given in one of them only)."""
    params = _item_params(0, item)
    for name, value in query.items():
        if name in params:
            raise falcon.HTTPInvalidParam("give it in the query or in the body, not both", name)
        params[name] = value
    return params


def _item_params(index: int, item) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise falcon.HTTPBadRequest(
            title="Invalid JSON", description=f"update [{index}] must be an object"
        )
    params: dict[str, Any] = {}
    for name, value in item.items():
        if name == "counters":  # kept as posted: api.counters checks it
            params[name] = value
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, (int, float, str)):
            value = str(value)
        else:
            raise falcon.HTTPBadRequest(
                title="Invalid parameter",
                description=f"update [{index}]: {name!r} must be a string or a number",
            )
        if not (is_unicode(name) and is_unicode(value)):
            # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 text can hold
            raise falcon.HTTPBadRequest(
                title="Invalid parameter",
                description=f"update [{index}]: names and values must be valid Unicode text "
                "(a \\uD800-\\uDFFF escape must be half of a surrogate pair)",
            )
        params[name] = value
    return params


def is_unicode(text: str) -> bool:
    """False for text holding lone surrogates (from JSON's \\ud800 escapes), which UTF-8
    cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


# --------------------------------------------------------------------------- the table

Kind = Literal["identifier", "text", "number", "flag", "enum", "url", "json"]


@dataclass(frozen=True)
class Setting:
    """A limit the operator sets: the name of a Settings field, read when the table is resolved."""

    field: str


@dataclass(frozen=True)
class Param:
    """One parameter: how it is read and checked, and what /openapi.json says of it."""

    name: str
    kind: Kind
    _: KW_ONLY
    description: str
    required: bool = False
    default: Any = ""  # when left out (an optional number or flag: also when empty)
    minimum: float = -MAX_NUMBER
    maximum: float | Setting = MAX_NUMBER
    exclusive_minimum: bool = False
    max_length: int | Setting = 0
    values: tuple[str, ...] = ()  # an enum's
    whole: bool = False  # a number whose fraction is dropped

    def resolve(self, settings: Settings) -> Param:
        """This parameter with the limits of a server running with these settings."""
        limits = {
            name: getattr(settings, value.field)
            for name, value in vars(self).items()
            if isinstance(value, Setting)
        }
        return replace(self, **limits)


# fmt: off
JOBID = Param("jobid", "identifier", required=True, max_length=Setting("max_id_length"),
    description="The job: any string (or number), chosen when it is created. No control "
    "characters, tabs or line breaks. Compared as text (1.5 and 1.50 are two jobs); a `+` is "
    "a space, however it was encoded (a+b, a b and a%2Bb are one job, stored as `a b`).")
WORKID = Param("workid", "identifier", required=True, max_length=Setting("max_id_length"),
    description="The worker, unique within its job: any string (or number). No control "
    "characters, tabs or line breaks. Compared as text, a `+` is a space, as for jobid.")
DESC = Param("desc", "text", max_length=Setting("max_desc_length"),
    description="Text shown with the job (create) or the worker (update). Tabs and line feeds "
    "are allowed, other control characters are not.")
SECRET = Param("secret", "text", max_length=Setting("max_id_length"),
    description="Given at create, the job accepts updates and re-creation only with the same "
    "secret. Without it, anyone who knows the job id may.")
MAXAGE = Param("maxage", "number", default=Setting("default_maxage"), minimum=1,
    maximum=Setting("max_maxage"), whole=True,
    description="Seconds after creation when the job may be deleted (the fraction is dropped). "
    "Empty means the default, as for every optional number.")
NOTIFY = Param("notify", "url", max_length=2048,
    description="A URL the server POSTs a JSON document to, once, when every worker that has "
    "reported is done or one has failed. Only with a secret: the document's job_mac, "
    "HMAC-SHA256 of the jobid keyed by the secret, shows the receiver the job is its owner's. "
    "http or https, on one of the hosts this server may notify")  # /openapi.json names the hosts
META = Param("meta", "json", max_length=Setting("max_meta_length"),
    description="A JSON object the launcher keeps with the job (input locations, a run id...): "
    "returned in status and in the completion hook's document, so the reduce step learns what "
    "the launcher knew. At most this many characters of JSON; no NaN or Infinity.")
FAIL_WORKID = replace(WORKID, required=False,
    description="The worker that fails the job, if a worker does; left out or empty, the "
    "launcher does. No control characters, tabs or line breaks.")
REASON = replace(DESC, description="Why the job failed (shown on the page and the chart, and "
    "to every worker that is then told to skip its part). Tabs and line feeds are allowed, "
    "other control characters are not.")
EXPECTED = Param("workers", "number", default=None, minimum=1,
    maximum=Setting("max_workers_per_job"), whole=True,
    description="How many workers the job will have (the fraction is dropped). Until that many "
    "have reported, the overall percent counts the silent ones as 0 % and the job is not done. "
    "Left out: the job is done when every worker that has reported is done.")
CURRENT = Param("current", "number", required=True, minimum=0,
    description="How much of its work the worker has done.")
TOTAL = Param("total", "number", required=True, minimum=0, exclusive_minimum=True,
    description="How much work the worker has; the bar shows current / total, which must be a "
    "finite percentage (so total may be tiny only if current is).")
OK = Param("ok", "flag", default=True,
    description="false, no or 0 marks the worker failed (drawn red); any other number, true or "
    "yes, or leaving it out, means it is fine.")
# Longer than 16 characters is refused as too long, before the values are compared.
WORKERS = Param("workers", "enum", default="all", values=("all", "problems", "none"),
    max_length=16,
    description="Which workers to list: all, problems (failed and stale ones) or none. The "
    "counts always cover all.")
WORKER_LIMIT = Param("limit", "number", default=1000, minimum=1, maximum=10000, whole=True,
    description="workers=all: workers on one page, in natural order of their ids; "
    "workers=problems: failed workers and stale workers listed, at most this many of each. "
    "The fraction is dropped.")
AFTER = Param("after", "identifier", max_length=Setting("max_id_length"),
    description="workers=all: start after this worker id (the `next_after` of the previous "
    "page). Empty: from the first worker.")
VIEW = Param("view", "enum", default="chart", values=("chart", "lifetimes"), max_length=16,
    description="chart: the job's progress chart, one bar per worker; lifetimes: a histogram "
    "of how long its finished (done or failed) workers took, with the median and the slowest "
    "five.")
INTERVAL = Param("interval", "number", default=30.0, minimum=1, maximum=86400,
    description="Seconds between the page's refreshes.")
LIMIT = Param("limit", "number", default=20, minimum=1, maximum=200, whole=True,
    description="Jobs on one page (the fraction is dropped).")
OFFSET = Param("offset", "number", default=0, minimum=0, maximum=1e9, whole=True,
    description="Jobs to skip, newest first (the fraction is dropped).")

# Each endpoint's parameters, in the order they are checked: the first bad one is reported.
ENDPOINT_PARAMS: dict[str, tuple[Param, ...]] = {
    "create": (JOBID, DESC, MAXAGE, SECRET, NOTIFY, EXPECTED, META),
    "update": (JOBID, WORKID, CURRENT, TOTAL, OK, DESC, SECRET),
    "status": (JOBID, WORKERS, WORKER_LIMIT, AFTER),
    "render": (JOBID, VIEW),
    "show": (JOBID, INTERVAL),
    "jobs": (LIMIT, OFFSET),
    "delete": (JOBID, SECRET),
    "fail": (JOBID, FAIL_WORKID, REASON, SECRET),
}
# fmt: on


@lru_cache(maxsize=8)
def endpoint_params(settings: Settings) -> dict[str, tuple[Param, ...]]:
    """The table with the limits of a server running with these settings."""
    return {
        endpoint: tuple(p.resolve(settings) for p in params)
        for endpoint, params in ENDPOINT_PARAMS.items()
    }


def parse(endpoint: str, params: dict[str, str], settings: Settings) -> dict[str, Any]:
    """The endpoint's parameters, read and checked in the table's order."""
    return {
        p.name: _READERS[p.kind](p, params, settings) for p in endpoint_params(settings)[endpoint]
    }


# --------------------------------------------------------------------------- one reader per kind


def _text(p: Param, params: dict[str, str], settings: Settings) -> str:
    value = params.get(p.name)
    if value is None or (p.required and value == ""):
        if p.required:
            raise falcon.HTTPMissingParam(p.name)
        return p.default
    if len(value) > p.max_length:
        raise falcon.HTTPInvalidParam(f"it may be at most {p.max_length} characters long", p.name)
    if _CONTROL.search(value):
        raise falcon.HTTPInvalidParam("it must not contain NUL or control characters", p.name)
    return value


def _identifier(p: Param, params: dict[str, str], settings: Settings) -> str:
    """A job or worker id: any non-empty string, compared as text, `+` read as a space."""
    value = _text(p, params, settings)
    if "\t" in value or "\n" in value or "\r" in value:
        raise falcon.HTTPInvalidParam("it must not contain tabs or line breaks", p.name)
    return canonical_id(value)


def canonical_id(value: str) -> str:
    """The id as stored: a `+` is a space. A `+` typed raw into a URL arrives as a space, the
    same id sent encoded (requests, curl --data-urlencode) as a `+`; both are one job (the
    guide's own `date -Ins` ids end in `+08:00` east of UTC)."""
    return value.replace("+", " ")


def _number(p: Param, params: dict[str, str], settings: Settings) -> float:
    raw = params.get(p.name)
    if raw is None or raw.strip() == "":
        if p.required:
            raise _missing(p.name, params)
        return p.default
    value = _finite(raw, p.name)
    if value > p.maximum:
        raise falcon.HTTPInvalidParam(f"it must be at most {p.maximum:g}", p.name)
    if value < p.minimum or (p.exclusive_minimum and value == p.minimum):
        rule = ">" if p.exclusive_minimum else ">="
        raise falcon.HTTPInvalidParam(f"it must be {rule} {p.minimum:g}", p.name)
    return int(value) if p.whole else value


# The guide's update examples print `&current=` as `¤t=` (a browser read `&curren` as the
# HTML entity ¤): a URL copied from them has no `current`, and says so.
_MISPRINTED = {"current": "\u00a4t="}


def _missing(name: str, params: dict[str, str]) -> falcon.HTTPError:
    mark = _MISPRINTED.get(name)
    if mark and any(mark in value for value in params.values()):
        return falcon.HTTPBadRequest(
            title="Missing parameter",
            description=f'The "{name}" parameter is required. The URL holds "{mark}": '
            f'"&{name}=" as the guide misprints it; type "&{name}=".',
        )
    return falcon.HTTPMissingParam(name)


def _flag(p: Param, params: dict[str, str], settings: Settings) -> bool:
    """The guide's `ok`: false only when given and equal to zero (or false, or no)."""
    raw = params.get(p.name)
    if raw is None or raw.strip() == "":
        return p.default
    word = raw.strip().lower()
    if word in FLAG_WORDS:
        return FLAG_WORDS[word]
    return _finite(word, p.name, " (0 means failed)") != 0


def _enum(p: Param, params: dict[str, str], settings: Settings) -> str:
    value = _text(p, params, settings)
    if value not in p.values:
        choices = ", ".join(p.values[:-1]) + " or " + p.values[-1]
        raise falcon.HTTPInvalidParam(f"it must be {choices}", p.name)
    return value


def _url(p: Param, params: dict[str, str], settings: Settings) -> str:
    """create's completion hook: an http(s) URL on a host the operator allowed, or nothing."""
    url = _text(p, params, settings)
    reason = url and notify_refusal(url, settings.notify_allowed)
    if reason:
        raise falcon.HTTPInvalidParam(reason, p.name)
    return url


def _json_object(p: Param, params: dict[str, str], settings: Settings) -> str:
    """create's meta: a JSON object, returned as compact JSON to store ('' when left out)."""
    text = _text(p, params, settings)
    if not text.strip():
        return ""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise falcon.HTTPInvalidParam("it nests arrays or objects too deeply", p.name) from exc
    except ValueError as exc:
        raise falcon.HTTPInvalidParam(f"it must be valid JSON ({exc})", p.name) from exc
    if not isinstance(value, dict):
        raise falcon.HTTPInvalidParam('it must be a JSON object, e.g. {"input": "a.csv"}', p.name)
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not is_unicode(compact):
        raise falcon.HTTPInvalidParam(
            "its strings must be valid Unicode (a \\uD800-\\uDFFF escape must be half of a "
            "surrogate pair)",
            p.name,
        )
    return compact


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _finite(raw: str, name: str, note: str = "") -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise falcon.HTTPInvalidParam(f"it must be a number{note}", name) from exc
    if not math.isfinite(value):
        raise falcon.HTTPInvalidParam(f"it must be a finite number{note}", name)
    return value


_READERS: dict[Kind, Callable[[Param, dict[str, str], Settings], Any]] = {
    "identifier": _identifier,
    "text": _text,
    "number": _number,
    "flag": _flag,
    "enum": _enum,
    "url": _url,
    "json": _json_object,
}
