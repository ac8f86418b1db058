"""The OpenAPI 3.0 description of the API, served at /openapi.json: every endpoint, parameter,
limit and response code, with the limits taken from the server's own settings."""

from __future__ import annotations

from api.params import MAX_BATCH, MAX_FIELDS, MAX_NUMBER
from tasks.settings import Settings

# What api.params refuses in a string, as ECMA-262 patterns: every C0 control character and DEL,
# except that free text may hold tabs and line feeds. Ids may hold neither.
ID_PATTERN = r"^[^\u0000-\u001f\u007f]*$"
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f]*$"

NOTIFY_MAX_LENGTH = 2048  # api.params.notify_url
BLANK = {"type": "string", "pattern": r"^\s*$"}
SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HTML = "text/html"
PNG = "image/png"

_READING = (
    "Parameters come in the query string (GET) or as an application/x-www-form-urlencoded body "
    "(POST; a query string given as well is read with it). Each may be given once; at most "
    f"{MAX_FIELDS} are read; values must be valid UTF-8 once percent-decoded ('+' is a space)."
)


def openapi_spec(settings: Settings) -> dict:
    """The OpenAPI document of a server running with these settings."""
    fields = _fields(settings)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Progress service",
            "version": "1",
            "description": "Live progress bars for distributed jobs, compatible with the MWA "
            "Progress Bar web service: create a job, let every worker report its state with "
            "update, watch it with show, render or status. " + _READING,
        },
        "paths": {
            "/progress/create": _endpoint(
                fields,
                summary="Create a job, or re-create it (dropping its workers)",
                description="A job id that exists is re-created: its workers' progress is "
                "discarded. A job created with a secret can be re-created only with it.",
                params=["jobid", "desc", "maxage", "secret", "notify"],
                required=["jobid"],
                ok={"200": _json("The job as created, with its URLs", "Created")},
                errors=["400", "403", "413", "503"],
                operation="create",
            ),
            "/progress/update": _endpoint(
                fields,
                summary="Report one worker's state",
                description="Accepted updates are applied in the order they were accepted, "
                "within a moment. POST a JSON array of update objects to report many workers "
                f"(of any jobs) at once, 1 to {MAX_BATCH} of them: all are accepted, or none.",
                params=["jobid", "workid", "current", "total", "ok", "desc", "secret"],
                required=["jobid", "workid", "current", "total"],
                ok={"202": _json("Accepted (not yet applied)", "Accepted")},
                errors=["400", "403", "404", "409", "413", "429", "503"],
                operation="update",
                json_body=_batch_body(settings),
            ),
            "/progress/status": _endpoint(
                fields,
                summary="The job's state as JSON: summary and workers",
                params=["jobid", "workers"],
                required=["jobid"],
                ok={"200": _json("The job's state", "Status")},
                errors=["400", "404", "413", "503"],
                operation="status",
            ),
            "/progress/render": _endpoint(
                fields,
                summary="The job's chart as a PNG",
                description="Charts are drawn in the background after each change. Send the "
                "last ETag in If-None-Match to get a 304 while the chart is unchanged.",
                params=["jobid"],
                required=["jobid"],
                headers=[_if_none_match()],
                ok={
                    "200": {
                        "description": "The chart",
                        "headers": {"ETag": _header("Identifies this chart")},
                        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "304": {
                        "description": "The chart named in If-None-Match is still the latest",
                        "headers": {"ETag": _header("Identifies this chart")},
                    },
                },
                errors=["400", "404", "413", "503"],
                operation="render",
            ),
            "/progress/show": _endpoint(
                fields,
                summary="A web page showing the job's chart and state, refreshed live",
                params=["jobid", "interval"],
                required=["jobid"],
                ok={"200": _page("The page")},
                errors=["400", "404", "413", "503"],
                operation="show",
            ),
            "/progress/jobs": _endpoint(
                fields,
                summary="Recent jobs, newest first, as JSON",
                description="404 when listing is switched off (PROGRESS_LIST_JOBS=0).",
                params=["limit", "offset"],
                required=[],
                ok={"200": _json("One page of recent jobs", "Jobs")},
                errors=["400", "404", "413", "503"],
                operation="jobs",
            ),
            "/progress/": _endpoint(
                fields,
                summary="Recent jobs, newest first, as a web page",
                description="404 when listing is switched off (PROGRESS_LIST_JOBS=0).",
                params=["limit", "offset"],
                required=[],
                ok={"200": _page("The page")},
                errors=["400", "404", "413", "503"],
                operation="overview",
            ),
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether Redis answers and ingest and render workers are consuming",
                    "responses": {
                        "200": _json("All is well", "Health"),
                        "503": {
                            "description": "Something is wrong: the reasons say what; or Redis "
                            "is unreachable",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "anyOf": [
                                            {"$ref": "#/components/schemas/Health"},
                                            {"$ref": "#/components/schemas/Error"},
                                        ]
                                    }
                                }
                            },
                        },
                    },
                }
            },
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


def _fields(settings: Settings) -> dict[str, dict]:
    """Every parameter: its JSON schema (the value once read) and what it means."""
    s = settings
    number = {"type": "number", "minimum": 0, "maximum": MAX_NUMBER}
    return {
        "jobid": {
            "description": "The job: any string (or number), chosen when it is created. "
            "No control characters, tabs or line breaks.",
            "schema": _string(s.max_id_length, ID_PATTERN, min_length=1),
        },
        "workid": {
            "description": "The worker, unique within its job: any string (or number). No "
            "control characters, tabs or line breaks.",
            "schema": _string(s.max_id_length, ID_PATTERN, min_length=1),
        },
        "desc": {
            "description": "Text shown with the job (create) or the worker (update). Tabs and "
            "line feeds are allowed, other control characters are not.",
            "schema": _string(s.max_desc_length, TEXT_PATTERN),
        },
        "secret": {
            "description": "Given at create, the job accepts updates and re-creation only with "
            "the same secret. Without it, anyone who knows the job id may.",
            "schema": _string(s.max_id_length, TEXT_PATTERN),
        },
        "notify": _notify(s),
        "maxage": {
            "empty_is_default": True,
            "description": "Seconds after creation when the job may be deleted (the fraction "
            "is dropped). Empty means the default, as for every optional number.",
            "schema": {
                "type": "number",
                "minimum": 1,
                "maximum": s.max_maxage,
                "default": s.default_maxage,
            },
        },
        "current": {
            "description": "How much of its work the worker has done.",
            "schema": number,
        },
        "total": {
            "description": "How much work the worker has; the bar shows current / total, "
            "which must be a finite percentage (so total may be tiny only if current is).",
            "schema": {**number, "exclusiveMinimum": True},
        },
        "ok": {
            "empty_is_default": True,
            "description": "false, no or 0 marks the worker failed (drawn red); any other "
            "number, true or yes, or leaving it out, means it is fine.",
            "schema": {
                "anyOf": [
                    {"type": "boolean"},
                    {"type": "number"},
                    {"type": "string", "enum": ["true", "false", "yes", "no"]},
                ],
                "default": True,
            },
        },
        "workers": {
            "description": "Which workers to list: all, problems (failed and stale ones) or "
            "none. The counts always cover all.",
            "schema": {"type": "string", "enum": ["all", "problems", "none"], "default": "all"},
        },
        "interval": {
            "empty_is_default": True,
            "description": "Seconds between the page's refreshes.",
            "schema": {"type": "number", "minimum": 1, "maximum": 86400, "default": 30},
        },
        "limit": {
            "empty_is_default": True,
            "description": "Jobs on one page (the fraction is dropped).",
            "schema": {"type": "number", "minimum": 1, "maximum": 200, "default": 20},
        },
        "offset": {
            "empty_is_default": True,
            "description": "Jobs to skip, newest first (the fraction is dropped).",
            "schema": {"type": "number", "minimum": 0, "maximum": 1e9, "default": 0},
        },
    }


def _notify(settings: Settings) -> dict:
    """create's completion hook: allowed only to hosts the operator listed."""
    hosts = sorted(settings.notify_allowed)
    if not hosts:
        return {
            "description": "A URL to call when the job finishes: this server sends no "
            "notifications (PROGRESS_NOTIFY_HOSTS is empty), so it must be left out or empty.",
            "schema": {"type": "string", "maxLength": 0},
        }
    # A host alone allows any port (and user info); host:port allows just that address.
    any_port = "|".join(h.replace(".", r"\.") for h in hosts if ":" not in h) or "(?!)"
    exact = "|".join(h.replace(".", r"\.") for h in hosts if ":" in h) or "(?!)"
    pattern = (  # or empty: no notification
        rf"^(?:https?://(?:(?:[^@/?#\u0000-\u0020\u007f]*@)?(?:{any_port})(?::[0-9]+)?|"
        rf"(?:{exact}))(?:[/?#][^\u0000-\u001f\u007f]*)?)?$"
    )
    return {
        "description": "A URL the server POSTs a JSON document to, once, when every worker "
        "that has reported is done or one has failed: http or https, on one of the hosts this "
        f"server may notify: {', '.join(hosts)}.",
        "schema": {"type": "string", "maxLength": NOTIFY_MAX_LENGTH, "pattern": pattern},
    }


def _string(max_length: int, pattern: str, min_length: int = 0) -> dict:
    schema = {"type": "string", "maxLength": max_length, "pattern": pattern}
    if min_length:
        schema["minLength"] = min_length
    return schema


def _endpoint(
    fields: dict[str, dict],
    *,
    summary: str,
    params: list[str],
    required: list[str],
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
            "name": name,
            "in": "query",
            "required": name in required,
            "description": fields[name]["description"],
            "schema": fields[name]["schema"],
            **({"allowEmptyValue": True} if fields[name].get("empty_is_default") else {}),
        }
        for name in params
    ]
    form = {
        "type": "object",
        "properties": {name: _form_field(fields[name]) for name in params},
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
                + (", or a JSON array of update objects" if json_body else "")
                + ".",
                "content": body,
            },
        },
    }


def _form_field(field: dict) -> dict:
    """A parameter's schema in a form, where an empty value (or only blanks) of an optional
    number means its default, as in a query (allowEmptyValue)."""
    if not field.get("empty_is_default"):
        return field["schema"]
    return {"anyOf": [field["schema"], BLANK]}


def _batch_body(settings: Settings) -> dict:
    """Many updates in one POST: each object holds one update's parameters."""
    fields = _fields(settings)
    names = ["jobid", "workid", "current", "total", "ok", "desc", "secret"]
    properties = {name: dict(fields[name]["schema"]) for name in names}
    # In JSON, an id may be a number as well as a string; ok a boolean or a number.
    for name in ("jobid", "workid"):
        properties[name] = {"anyOf": [properties[name], {"type": "number"}]}
    properties["ok"] = {"anyOf": [{"type": "boolean"}, {"type": "number"}]}
    return {
        "schema": {
            "type": "array",
            "description": "Update objects with the parameters of a query as fields. Their "
            "values are read as a query's: numbers may also be given as strings.",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": {
                "type": "object",
                "properties": properties,
                "required": ["jobid", "workid", "current", "total"],
                # Other fields are ignored, but must be strings, numbers or booleans too.
                "additionalProperties": SCALAR,
            },
        }
    }


def _if_none_match() -> dict:
    return {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "The ETag of the chart the client has.",
        "schema": {"type": "string"},
    }


def _header(description: str) -> dict:
    return {"description": description, "schema": {"type": "string"}}


# --------------------------------------------------------------------------- responses


def _json(description: str, schema: str) -> dict:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _page(description: str) -> dict:
    return {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}


def _error_responses(settings: Settings) -> dict:
    error = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
    retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    reasons = {
        "400": "A parameter is missing, repeated or invalid; the description names it and the "
        "rule it broke",
        "403": "The job was created with a secret, and the request did not present it",
        "404": "No such job (never created, or expired); or, for the job lists, listing is "
        "switched off",
        "409": f"The job already has {settings.max_workers_per_job} workers, the most it may "
        "have, and this is a new one",
        "413": f"The body is over {settings.max_body_bytes} bytes, or a batch holds over "
        f"{MAX_BATCH} updates",
        "429": "Too many updates from this address (only with PROGRESS_UPDATE_RATE_LIMIT set)",
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


def _schemas() -> dict:
    number = {"type": "number"}
    string = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    url = {"type": "string", "format": "uri"}
    return {
        "Error": {
            "type": "object",
            "properties": {"title": string, "description": string},
            "required": ["title", "description"],
        },
        "Created": {
            "type": "object",
            "properties": {
                "jobid": string,
                "desc": string,
                "maxage": {"type": "integer", "minimum": 1},
                "created": {**number, "description": "Unix time"},
                "show": url,
                "render": url,
                "status": url,
            },
            "required": ["jobid", "desc", "maxage", "created", "show", "render", "status"],
        },
        "Accepted": {
            "type": "object",
            "properties": {
                "accepted": {
                    "description": "true for one update; for a JSON batch, how many",
                    "anyOf": [{"type": "boolean", "enum": [True]}, {"type": "integer"}],
                }
            },
            "required": ["accepted"],
        },
        "Status": {
            "type": "object",
            "properties": {
                "jobid": string,
                "desc": string,
                "created": number,
                "maxage": {"type": "integer"},
                "version": {**count, "description": "Bumped by every change of a worker"},
                "now": {**number, "description": "The server's time (Unix)"},
                "stale_after": {
                    **number,
                    "description": "Seconds of silence after which a running worker is stale",
                },
                "percent": {**number, "minimum": 0, "maximum": 100},
                "counts": {
                    "type": "object",
                    "properties": {s: count for s in ("running", "done", "failed", "stale")},
                    "required": ["running", "done", "failed", "stale"],
                },
                "last_update": {**number, "nullable": True},
                "eta_seconds": {**number, "minimum": 0, "nullable": True},
                "workers": {
                    "type": "array",
                    "description": "The workers asked for (workers=), in natural order of id",
                    "items": {"$ref": "#/components/schemas/Worker"},
                },
            },
            "required": [
                "jobid",
                "desc",
                "created",
                "maxage",
                "version",
                "now",
                "stale_after",
                "percent",
                "counts",
                "last_update",
                "eta_seconds",
                "workers",
            ],
        },
        "Worker": {
            "type": "object",
            "properties": {
                "workid": string,
                "current": number,
                "total": number,
                "percent": number,
                "ok": {"type": "boolean"},
                "desc": string,
                "updated": number,
                "stale": {"type": "boolean"},
                "state": {"type": "string", "enum": ["running", "done", "failed", "stale"]},
            },
            "required": [
                "workid",
                "current",
                "total",
                "percent",
                "ok",
                "desc",
                "updated",
                "stale",
                "state",
            ],
        },
        "Jobs": {
            "type": "object",
            "properties": {
                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/JobRow"}},
                "total": count,
                "limit": {"type": "integer", "minimum": 1},
                "offset": count,
            },
            "required": ["jobs", "total", "limit", "offset"],
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "reasons": {"type": "array", "items": string},
                "redis": {"type": "string", "enum": ["ok"]},
                "seconds_since_seen": {
                    "type": "object",
                    "description": "Since a worker of each kind last consumed a task",
                    "properties": {
                        role: {**number, "nullable": True} for role in ("ingest", "render")
                    },
                },
                "pending_updates": count,
            },
            "required": ["status", "reasons", "redis", "seconds_since_seen", "pending_updates"],
        },
        "JobRow": {
            "type": "object",
            "properties": {
                "jobid": string,
                "desc": string,
                "created": number,
                "workers": count,
                "percent": {**number, "minimum": 0, "maximum": 100},
                "failed": count,
                "stale": count,
                "show": url,
            },
            "required": [
                "jobid",
                "desc",
                "created",
                "workers",
                "percent",
                "failed",
                "stale",
                "show",
            ],
        },
    }
