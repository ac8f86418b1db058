"""The OpenAPI 3.0 description of the API, served at /openapi.json: every endpoint and response
code, with each parameter's rules taken from api.params' table as a server with these settings
applies them."""

from __future__ import annotations

import re

from api import read_budget
from api.counters import MAX_NUMBER as COUNTER_MAX_NUMBER
from api.params import (
    FLAG_WORDS,
    ID_PATTERN,
    LIMIT,
    MAX_BATCH,
    MAX_FIELDS,
    MAXAGE,
    TEXT_PATTERN,
    Param,
    endpoint_params,
)
from domain.hooks import allowed_addresses
from tasks.settings import Settings

BLANK = {"type": "string", "pattern": r"^\s*$"}
SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
ETAG = {"ETag": {"description": "Identifies this chart", "schema": {"type": "string"}}}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the chart the client has.",
    "schema": {"type": "string"},
}

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HTML = "text/html"
PNG = "image/png"

_READING = (
    "Parameters come in the query string (GET) or as an application/x-www-form-urlencoded body "
    "(POST; a query string given as well is read with it). Each may be given once; at most "
    f"{MAX_FIELDS} are read; values must be valid UTF-8 once percent-decoded ('+' is a space)."
)
_BROWSERS = (
    "Every GET that only reads answers HEAD too (create, update, fail and delete answer it "
    "405). Other sites' pages may read status, render, jobs and this document "
    "(Access-Control-Allow-Origin: *, GET and HEAD only), and may not create, update, fail or "
    "delete: a request to those that a browser marks as sent by another site (Sec-Fetch-Site "
    "cross-site or same-site, or an Origin not this server's) is refused with 403."
)


def openapi_spec(settings: Settings) -> dict:
    """The OpenAPI document of a server running with these settings."""
    table = endpoint_params(settings)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Progress service",
            "version": "1",
            "description": "Live progress bars for distributed jobs, compatible with the MWA "
            "Progress Bar web service: create a job, let every worker report its state with "
            "update, watch it with show, render or status. " + _READING + " " + _BROWSERS,
        },
        "paths": {
            "/progress/create": _endpoint(
                settings,
                summary="Create a job, or re-create it (dropping its workers)",
                description="A job id that exists is re-created: its workers' progress is "
                "discarded. A job created with a secret can be re-created only with it.",
                params=table["create"],
                ok={"200": _json("The job as created, with its URLs", "Created")},
                errors=["400", "403", "413", "429", "503"],
                operation="create",
            ),
            "/progress/update": _endpoint(
                settings,
                summary="Report one worker's state",
                description="Accepted updates are applied in the order they were accepted, "
                "within a moment. POST a JSON array of update objects to report many workers "
                f"(of any jobs) at once, 1 to {MAX_BATCH} of them: all are accepted, or none.",
                params=table["update"],
                ok={"202": _json("Accepted (not yet applied)", "Accepted")},
                errors=["400", "403", "404", "409", "413", "429", "503"],
                operation="update",
                json_body=_batch_body(table["update"], settings),
            ),
            "/progress/delete": _with_delete_method(
                _endpoint(
                    settings,
                    summary="Delete a job now, with its workers and chart",
                    description="Also answers HTTP DELETE, with the parameters in the query. "
                    "A job created with a secret can be deleted only with it. Updates still "
                    "queued for the job are dropped; afterwards every endpoint answers 404 "
                    "for it, until it is created again.",
                    params=table["delete"],
                    ok={"200": _json("The job is deleted", "Deleted")},
                    errors=["400", "403", "404", "413", "503"],
                    operation="delete",
                )
            ),
            "/progress/fail": _endpoint(
                settings,
                summary="Fail a job as a whole: its workers are told to skip their parts",
                description="By one of its workers (workid) or its launcher (no workid). The "
                "first failure stands: failing a failed job again changes nothing. The status "
                "says who failed it, why and when; the page and chart say so in red; the "
                "completion hook is sent 'failed' (once: not again when a worker fails too, "
                "and never 'done' later). A job created with a secret is failed only with it.",
                params=table["fail"],
                ok={"200": _json("The failure that stands", "Failed")},
                errors=["400", "403", "404", "413", "503"],
                operation="fail",
            ),
            "/progress/status": _endpoint(
                settings,
                summary="The job's state as JSON: summary and workers",
                description=read_budget.describe(settings),
                params=table["status"],
                ok={"200": _json("The job's state", "Status")},
                errors=["400", "404", "413", "429", "503"],
                operation="status",
            ),
            "/progress/render": _endpoint(
                settings,
                summary="The job's chart as a PNG",
                description="Charts are drawn in the background after each change. Send the "
                "last ETag in If-None-Match to get a 304 while the chart is unchanged. "
                "view=lifetimes: a histogram of how long the finished workers took, drawn when "
                "asked for (its ETag changes only when a worker finishes).",
                params=table["render"],
                headers=[IF_NONE_MATCH],
                ok={
                    "200": {
                        "description": "The chart",
                        "headers": ETAG,
                        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "304": {
                        "description": "The chart named in If-None-Match is still the latest",
                        "headers": ETAG,
                    },
                },
                errors=["400", "404", "413", "503"],
                operation="render",
            ),
            "/progress/show": _endpoint(
                settings,
                summary="A web page showing the job's chart and state, refreshed live",
                params=table["show"],
                ok={"200": _page("The page")},
                errors=["400", "404", "413", "503"],
                operation="show",
            ),
            "/progress/jobs": _endpoint(
                settings,
                summary="Recent jobs, newest first, as JSON",
                description="404 when listing is switched off (PROGRESS_LIST_JOBS=0).",
                params=table["jobs"],
                ok={"200": _json("One page of recent jobs", "Jobs")},
                errors=["400", "404", "413", "503"],
                operation="jobs",
            ),
            "/progress/": _endpoint(
                settings,
                summary="Recent jobs, newest first, as a web page",
                description="404 when listing is switched off (PROGRESS_LIST_JOBS=0).",
                params=table["jobs"],
                ok={"200": _page("The page")},
                errors=["400", "404", "413", "503"],
                operation="overview",
            ),
            "/livez": {
                "get": {
                    "operationId": "live",
                    "summary": "Whether this web process answers (for liveness probes; no Redis)",
                    "responses": {"200": _json("The process answers", "Live")},
                }
            },
            "/readyz": _readiness("ready", READY),
            "/healthz": _readiness("health", f"{READY}; the older name of /readyz"),
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Counters, gauges and histograms in Prometheus' text format",
                    "responses": {
                        "200": {
                            "description": "The metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "503": {"$ref": "#/components/responses/503"},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description of the API",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": _schemas(), "responses": _error_responses(settings)},
    }


# --------------------------------------------------------------------------- parameters


def _schema(p: Param, settings: Settings) -> dict:
    """The JSON schema of a parameter's value as api.params reads it."""
    if p.kind == "number":
        schema = {"type": "number", "minimum": p.minimum, "maximum": p.maximum}
        if p.exclusive_minimum:
            schema["exclusiveMinimum"] = True
    elif p.kind == "flag":
        forms = [
            {"type": "boolean"},
            {"type": "number"},
            {"type": "string", "enum": list(FLAG_WORDS)},
        ]
        schema = {"anyOf": forms}
    elif p.kind == "enum":
        schema = {"type": "string", "enum": list(p.values)}
    elif p.kind == "url":
        return _notify(p, settings)
    elif p.kind == "json":  # create's meta: the text of a JSON object (in a query, `content`)
        return {"type": "object"}
    else:
        pattern = ID_PATTERN if p.kind == "identifier" else TEXT_PATTERN
        schema = {"type": "string", "maxLength": p.max_length, "pattern": pattern}
        if p.required:
            schema["minLength"] = 1
        return schema
    if not p.required and p.default is not None:  # None: no default, left out means unset
        schema["default"] = p.default
    return schema


def _query_value(p: Param, settings: Settings) -> dict:
    """How a query parameter's value is described: a JSON one by its media type (the value is
    the text of a JSON object), every other by its schema."""
    if p.kind == "json":
        return {"content": {JSON: {"schema": _schema(p, settings)}}}
    return {"schema": _schema(p, settings)}


def _notify(p: Param, settings: Settings) -> dict:
    """create's completion hook: allowed only to hosts the operator listed."""
    if not settings.notify_allowed:
        return {"type": "string", "maxLength": 0}
    # As domain.hooks.notify_refusal: host:port allows that port, a host alone only the
    # scheme's default one (80, 443); user info is allowed either way.
    pairs = sorted(allowed_addresses(settings.notify_allowed), key=repr)
    alone = "|".join(_host_pattern(h) for h, p in pairs if p is None) or "(?!)"
    with_port = "|".join(f"{_host_pattern(h)}:0*{p}" for h, p in pairs if p is not None) or "(?!)"
    user = r"(?:[^@/?#\[\]\u0000-\u0020\u007f]*@)?"
    pattern = (  # or empty: no notification
        rf"^(?:(?:http://{user}(?:{alone})(?::0*80)?|https://{user}(?:{alone})(?::0*443)?|"
        rf"https?://{user}(?:{with_port}))(?:[/?#][^\u0000-\u001f\u007f]*)?)?$"
    )
    return {"type": "string", "maxLength": p.max_length, "pattern": pattern}


def _host_pattern(host: str) -> str:
    """A host as a regular expression (ECMAScript's and Python's): IPv6 in brackets, and every
    character but letters, digits, - and : escaped."""
    return re.sub(r"([^A-Za-z0-9:-])", r"\\\1", f"[{host}]" if ":" in host else host)


def _description(p: Param, settings: Settings) -> str:
    if p.kind != "url":
        return p.description
    hosts = sorted(settings.notify_allowed)
    if not hosts:
        return (
            "A URL to call when the job finishes: this server sends no notifications "
            "(PROGRESS_NOTIFY_HOSTS is empty), so it must be left out or empty."
        )
    return f"{p.description}: {', '.join(hosts)}."


def _empty_is_default(p: Param) -> bool:
    """An optional number or flag given empty (or only blanks) takes its default."""
    return p.kind in ("number", "flag") and not p.required


def _endpoint(
    settings: Settings,
    *,
    summary: str,
    params: tuple[Param, ...],
    ok: dict,
    errors: list[str],
    operation: str,
    description: str = "",
    headers: list[dict] = (),
    json_body: dict | None = None,
) -> dict:
    """GET with a query and POST with a form: the same parameters, the same answers."""
    responses = {**ok, **{code: {"$ref": f"#/components/responses/{code}"} for code in errors}}
    query = [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "description": _description(p, settings),
            **_query_value(p, settings),
            **({"allowEmptyValue": True} if _empty_is_default(p) else {}),
        }
        for p in params
    ]
    required = [p.name for p in params if p.required]
    form = {
        "type": "object",
        "properties": {p.name: _form_field(p, settings) for p in params},
        # Other parameters are ignored, but count towards the limit, and none may repeat.
        "additionalProperties": SCALAR,
        "maxProperties": MAX_FIELDS,
    }
    if required:
        form["required"] = required
    body = {FORM: {"schema": form}}
    if json_body:
        body[JSON] = json_body
    common = {"summary": summary, "responses": responses}
    if description:
        common["description"] = description
    return {
        "get": {
            "operationId": operation,
            **common,
            "parameters": [*headers, *query],
        },
        "post": {
            "operationId": f"{operation}_post",
            **common,
            "parameters": list(headers),
            "requestBody": {
                "required": bool(required),  # without a body: no parameters
                "description": "The parameters as a form"
                + (", or a JSON update object, or a JSON array of them" if json_body else "")
                + ".",
                "content": body,
            },
        },
    }


def _with_delete_method(endpoint: dict) -> dict:
    """An endpoint that answers HTTP DELETE as it answers GET."""
    return {**endpoint, "delete": {**endpoint["get"], "operationId": "delete_delete"}}


def _form_field(p: Param, settings: Settings) -> dict:
    """A parameter's schema in a form, where an empty value (or only blanks) of an optional
    number means its default, as in a query (allowEmptyValue). A JSON value is the text of a
    JSON object: a string (that it holds an object, OpenAPI 3.0 cannot state for a form)."""
    if p.kind == "json":
        return {"type": "string", "maxLength": p.max_length, "pattern": TEXT_PATTERN}
    schema = _schema(p, settings)
    return {"anyOf": [schema, BLANK]} if _empty_is_default(p) else schema


def _batch_body(params: tuple[Param, ...], settings: Settings) -> dict:
    """Many updates in one POST: each object holds one update's parameters."""
    properties = {p.name: _schema(p, settings) for p in params}
    # In JSON, an id may be a number as well as a string; a flag a boolean or a number.
    for p in params:
        if p.kind == "identifier":
            properties[p.name] = {"anyOf": [properties[p.name], {"type": "number"}]}
        elif p.kind == "flag":
            properties[p.name] = {"anyOf": [{"type": "boolean"}, {"type": "number"}]}
    properties["counters"] = _counters_schema(settings)
    item = {
        "type": "object",
        "properties": properties,
        "required": [p.name for p in params if p.required],
        # Other fields are ignored, but must be strings, numbers or booleans too.
        "additionalProperties": SCALAR,
    }
    # Counters alone: the worker's progress stays as it is (no current, total, ok or desc).
    progress = ("current", "total", "ok", "desc")
    counters_only = {
        **item,
        "properties": {**properties, "counters": {**properties["counters"], "minProperties": 1}},
        "required": [p.name for p in params if p.required and p.name not in progress]
        + ["counters"],
        "not": {"anyOf": [{"required": [name]} for name in progress]},
    }
    return {
        "schema": {
            "anyOf": [
                {
                    "type": "array",
                    "description": "Update objects with the parameters of a query as fields. "
                    "Their values are read as a query's: numbers may also be given as strings.",
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                    "items": {"anyOf": [item, counters_only]},
                },
                {
                    **item,
                    "description": "One update, answered as a query's: its fields as a batch's "
                    "items, jobid, workid and secret in the body or in the query (not both)",
                },
                {**counters_only, "description": "One update of counters alone"},
            ]
        }
    }


def _counters_schema(settings: Settings) -> dict:
    """An update's counters, as far as OpenAPI 3.0 can state them: a [value, colour] pair's
    colour is a CSS colour name or #rrggbb (api.counters)."""
    text = {"type": "string", "pattern": ID_PATTERN}  # one line: no control characters
    number = {"type": "number", "minimum": -COUNTER_MAX_NUMBER, "maximum": COUNTER_MAX_NUMBER}
    value = {"anyOf": [number, {**text, "maxLength": settings.max_counter_value_length}]}
    return {
        "type": "object",
        "description": "Free-form counters merged into the worker's (newest wins per counter), "
        "each a number, a string, or [value, colour] with a CSS colour name or #rrggbb, e.g. "
        '{"files": [3, "red"], "stage": "flag"}. Only in a JSON body.',
        "maxProperties": settings.max_counters,
        "additionalProperties": {
            "anyOf": [value, {"type": "array", "minItems": 2, "maxItems": 2, "items": value}]
        },
    }


# --------------------------------------------------------------------------- responses


def _ref(schema: str) -> dict:
    return {"$ref": f"#/components/schemas/{schema}"}


def _json(description: str, schema: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


READY = "Whether Redis takes writes and every process type is at work (a readiness probe)"


def _readiness(operation: str, summary: str) -> dict:
    """/readyz, and /healthz under its older name."""
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "responses": {
                "200": _json("All is well", "Health"),
                "503": {
                    "description": "Something is wrong: the reasons say what; or Redis is "
                    "unreachable",
                    "content": {JSON: {"schema": {"anyOf": [_ref("Health"), _ref("Error")]}}},
                },
            },
        }
    }


def _page(description: str) -> dict:
    return {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}


def _error_responses(settings: Settings) -> dict:
    error = {JSON: {"schema": _ref("Error")}}
    retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    reasons = {
        "400": "A parameter is missing, repeated or invalid; the description names it and the "
        "rule it broke",
        "403": "The job was created with a secret, and the request did not present it; or "
        "a browser says a page of another site sent this create, update, fail or delete",
        "404": "No such job (never created, or expired); or, for the job lists, listing is "
        "switched off",
        "409": f"The job already has {settings.max_workers_per_job} workers, the most it may "
        "have, and this is a new one (PROGRESS_MAX_WORKERS_PER_JOB, counting the batch's new "
        f"workers too); or its workers' ids and rows would hold over {settings.max_job_bytes} "
        "bytes (PROGRESS_MAX_JOB_BYTES)",
        "413": f"The body is over {settings.max_body_bytes} bytes, or a batch holds over "
        f"{MAX_BATCH} updates",
        "429": "Too many requests from this address: creates (PROGRESS_CREATE_RATE_LIMIT), "
        "updates (only with PROGRESS_UPDATE_RATE_LIMIT set) or status rows "
        "(PROGRESS_WEB_STATUS_ROWS_PER_SECOND); or a quota is reached: the address holds "
        f"{settings.max_jobs_per_address} jobs (PROGRESS_MAX_JOBS_PER_ADDRESS), or the jobs it "
        f"created hold {settings.max_worker_rows_per_address} worker rows and this is a new "
        "worker (PROGRESS_MAX_WORKER_ROWS_PER_ADDRESS); Retry-After says when to try again",
        "503": "The progress store is unreachable; or, for render, the job's first chart is "
        "still being drawn",
    }
    return {
        code: {
            "description": reason,
            "content": error,
            **({"headers": retry} if code in ("429", "503") else {}),
        }
        for code, reason in reasons.items()
    }


def _object(**properties: dict) -> dict:
    """An object schema whose properties are all required."""
    return {"type": "object", "properties": properties, "required": list(properties)}


def _with_optional(schema: dict, **properties: dict) -> dict:
    """`schema` with more properties, which an object may leave out."""
    return {**schema, "properties": {**schema["properties"], **properties}}


def _job_outcome() -> dict:
    """Status's job_failed and meta (api.resources.job_outcome_fields)."""
    nullable_string = {"type": "string", "nullable": True}
    return {
        "job_failed": {
            "type": "object",
            "nullable": True,
            "description": "The job's failure as a whole (/progress/fail), or null",
            "properties": {
                "by": {"type": "string", "enum": ["worker", "launcher"]},
                "workid": {**nullable_string, "description": "The worker's id, or null"},
                "reason": {"type": "string"},
                "at": {"type": "number", "description": "Unix time"},
            },
            "required": ["by", "workid", "reason", "at"],
        },
        "meta": {
            "type": "object",
            "nullable": True,
            "description": "The JSON object create's meta= gave, or null",
        },
    }


def _schemas() -> dict:
    number = {"type": "number"}
    string = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    url = {"type": "string", "format": "uri"}
    percent = {**number, "minimum": 0, "maximum": 100}
    states = ["running", "done", "failed", "stale"]
    return {
        "Error": _object(title=string, description=string),
        "Created": _object(
            jobid=string,
            desc=string,
            maxage={"type": "integer", "minimum": MAXAGE.minimum},
            created={**number, "description": "Unix time"},
            workers_expected={
                "type": "integer",
                "minimum": 1,
                "nullable": True,
                "description": "The workers the job expects (create's workers=), or null",
            },
            show=url,
            render=url,
            status=url,
            meta=_job_outcome()["meta"],
        ),
        "Failed": _object(
            jobid=string,
            job_failed=_job_outcome()["job_failed"] | {"nullable": False},
            already_failed={
                "type": "boolean",
                "description": "true: the job had failed already, and that failure stands",
            },
        ),
        "Deleted": _object(jobid=string, deleted={"type": "boolean", "enum": [True]}),
        "Accepted": _object(
            accepted={
                "description": "true for one update; for a JSON batch, how many",
                "anyOf": [{"type": "boolean", "enum": [True]}, {"type": "integer"}],
            }
        ),
        "Status": _with_optional(
            _object(
                jobid=string,
                desc=string,
                created=number,
                maxage={"type": "integer"},
                version={**count, "description": "Bumped by every change of a worker"},
                now={**number, "description": "The server's time (Unix)"},
                stale_after={
                    **number,
                    "description": "Seconds of silence after which a running worker is stale",
                },
                percent=percent,
                counts=_object(**{state: count for state in states}),
                last_update={**number, "nullable": True},
                eta_seconds={**number, "minimum": 0, "nullable": True},
                workers_reported={**count, "description": "Workers that have reported, all told"},
                workers_expected={
                    "type": "integer",
                    "minimum": 1,
                    "nullable": True,
                    "description": "The workers the job expects (create's workers=), or null: "
                    "then percent is over the workers that reported",
                },
                workers_silent={
                    **count,
                    "description": "Expected workers that have not reported yet (0 without "
                    "workers_expected); they count 0 % in percent",
                },
                complete={
                    "type": "boolean",
                    "description": "Every worker is done: at least one reported, none is "
                    "running, stale or failed, and none of the expected ones is silent; "
                    "never for a job failed as a whole",
                },
                **_job_outcome(),
                workers={
                    "type": "array",
                    "description": "The workers asked for (workers=): with all, one page in "
                    "natural order of id; with problems, the failed ones then the stale ones, "
                    "each in natural order, at most `limit` of each. The counts cover all.",
                    "items": _ref("Worker"),
                },
                lifetimes=_ref("Lifetimes"),
            ),
            next_after={
                **string,
                "nullable": True,
                "description": "workers=all: the `after` of the next page (null: this is the last)",
            },
            next={**url, "nullable": True, "description": "workers=all: the next page's URL"},
        ),
        "Worker": _object(
            workid=string,
            current=number,
            total=number,
            percent=number,
            ok={"type": "boolean"},
            desc=string,
            updated=number,
            stale={"type": "boolean"},
            state={"type": "string", "enum": states},
            counters={
                "type": "array",
                "description": "The worker's counters (update's counters), in the order first "
                "posted, each with its latest value",
                "items": _object(
                    name=string,
                    value={"anyOf": [number, string]},
                    colour={
                        **string,
                        "nullable": True,
                        "description": "A CSS colour name or #rrggbb, lower case; null: none",
                    },
                ),
            },
            **_lifetime_fields(),
        ),
        "Lifetimes": _lifetimes_schema(),
        "Jobs": _object(
            jobs={"type": "array", "items": _ref("JobRow")},
            total=count,
            limit={"type": "integer", "minimum": LIMIT.minimum},
            offset=count,
        ),
        "Live": _object(status={"type": "string", "enum": ["ok"]}),
        "Health": _object(
            status={"type": "string", "enum": ["ok", "unavailable"]},
            reasons={"type": "array", "items": string},
            redis={"type": "string", "enum": ["ok"]},
            seconds_since_seen={
                "type": "object",
                "description": "Since beat last sent its sweep, and a worker of each kind last "
                "consumed a task",
                "properties": {
                    role: {**number, "nullable": True}
                    for role in ("beat", "ingest", "render", "notify")
                },
            },
            pending_updates=count,
        ),
        "JobRow": _object(
            jobid=string,
            desc=string,
            created=number,
            workers=count,
            percent=percent,
            failed=count,
            stale=count,
            show=url,
        ),
    }


def _lifetime_fields() -> dict:
    """A worker's lifetime, in a status document's workers."""
    time = {"type": "number", "nullable": True}
    return {
        "started": {**time, "description": "When the service got its first update (Unix time, "
                    "the service's clock); null for a worker seen before lifetimes were kept"},
        "finished": {**time, "description": "When the update that made it done or failed "
                     "arrived; null while it runs"},
        "duration": {**time, "minimum": 0, "description": "finished - started, seconds; null "
                     "until it finishes"},
    }  # fmt: skip


def _lifetimes_schema() -> dict:
    """A status document's `lifetimes`: how long the finished workers took."""
    seconds = {"type": "number", "minimum": 0}
    time = {"type": "number"}
    return _object(
        finished={"type": "integer", "minimum": 0,
                  "description": "Workers done or failed (whose start is known)"},
        median_seconds={**seconds, "nullable": True},
        longest_seconds={**seconds, "nullable": True},
        slowest={"type": "array", "maxItems": 5, "description": "The slowest five, slowest first",
                 "items": _object(workid={"type": "string"}, started=time, finished=time,
                                  duration=seconds)},
        overstaying={"type": "integer", "minimum": 0,
                     "description": "Running workers that have already run longer than "
                     "longest_seconds"},
        overstaying_workers={"type": "array", "maxItems": 25,
                             "description": "The first 25 of them, longest running first",
                             "items": _object(workid={"type": "string"}, started=time,
                                              running_seconds=seconds)},
    )  # fmt: skip
