"""The WSGI app: routes, error handlers, and the parts each resource receives."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import falcon
import redis
from redis.sentinel import MasterNotFoundError

from api import operations, pages, resources
from api.caching import CacheControl
from api.chart_cache import ChartCache
from api.cross_origin import CrossOrigin
from tasks.identity import IdentityGuard, StoreMismatch
from tasks.pipeline import Pipeline, ReplicasBehind
from tasks.runtime import build_pipeline, connect
from tasks.settings import Settings
from tasks.store import Store, write_refusal

log = logging.getLogger("progress.web")
BACKEND_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    pipeline: Pipeline | None = None,
    log_stream=None,
    request_log: operations.RequestLog | None = None,
) -> falcon.App:
    """The app, built from what it is given (by default, from the environment's settings);
    `log_stream` takes the request log (stderr), unless a `request_log` is given: the server
    logs what it refuses itself to the same one (api/server.py)."""
    settings = settings or Settings.from_env()
    store = store or Store(connect(settings))
    pipeline = pipeline or build_pipeline(store, settings)

    request_log = request_log or operations.RequestLog(store, log_stream)
    charts = ChartCache(store, ttl=settings.render_interval / 4)
    writes = {
        "/progress/create": resources.Create(store, settings, pipeline, charts),
        "/progress/update": resources.Update(store, settings, pipeline),
        "/progress/delete": resources.Delete(store, settings, pipeline, charts),
        "/progress/fail": resources.Fail(store, settings, pipeline, charts),
    }
    shared = {  # what other sites' pages may read (api/cross_origin.py)
        "/progress/status": resources.Status(store, settings),
        "/progress/render": resources.Render(store, settings, charts),
        "/progress/jobs": resources.Jobs(store, settings),
        "/openapi.json": resources.OpenAPI(settings),
    }
    reads = {
        **shared,
        "/progress/show": resources.Show(store, settings),
        "/progress/": resources.Jobs(store, settings, as_page=True),
        "/progress/static/{name}": pages.StaticFiles(),
        "/livez": operations.Live(),
        "/readyz": operations.Health(store, settings, pipeline.identity),
        "/healthz": operations.Health(store, settings, pipeline.identity),  # /readyz's old name
        "/metrics": operations.Metrics(store),
    }
    middleware = [
        request_log,
        CrossOrigin(list(shared.values()), list(writes.values()), settings.public_url),
        pages.SecurityHeaders(settings),
        CacheControl([shared["/openapi.json"]]),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = False
    app.resp_options.secure_cookies_by_default = False
    for path, resource in writes.items():
        app.add_route(path, resource)  # HEAD: 405, as Falcon answers a method with no responder
    for path, resource in reads.items():
        _answer_head(resource)
        app.add_route(path, resource)
    # First, so that every more specific handler (HTTPError's too) wins: Falcon picks the
    # handler of the nearest class in the exception's MRO.
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(resources.JobNotFound, _job_not_found(pipeline.identity))
    app.add_error_handler(resources.WrongSecret, _wrong_secret)
    app.add_error_handler(BACKEND_ERRORS, _backend_unavailable)
    app.add_error_handler(redis.exceptions.ResponseError, _backend_refuses)
    app.add_error_handler(StoreMismatch, _other_store)
    app.add_error_handler(ReplicasBehind, _replicas_behind)
    return app


def _answer_head(resource) -> None:
    """HEAD wherever GET only reads (`curl -I`): the GET responder runs and Falcon sends its
    headers without the body. The writes have none, so HEAD never changes a job."""
    resource.on_head = resource.on_get


def _unexpected_error(req, resp, exc: Exception, params) -> None:
    """A bug: the traceback is logged with the path alone, never the query (which may hold a
    secret, as Falcon's own handler would log it), and the client gets a JSON 500."""
    path = json.dumps(req.path)  # quoted: a newline in it cannot forge a log line
    log.error("event=unhandled_error method=%s path=%s", req.method, path, exc_info=exc)
    raise falcon.HTTPInternalServerError()


def _job_not_found(identity: IdentityGuard):
    def handle(req, resp, exc: resources.JobNotFound, params) -> None:
        """Also says so when the store lost its data: the job may be unknown for that reason
        rather than a wrong id (tasks/identity.py)."""
        description = f"there is no job with jobid {exc.jobid!r} (never created, or expired)"
        try:
            reset_at = identity.check(time.time()).reset_at
        except redis.exceptions.RedisError:
            reset_at = None
        if reset_at is not None:
            when = datetime.fromtimestamp(reset_at, UTC).isoformat(timespec="seconds")
            description += (
                f"; the progress store lost its data and was started afresh at {when}: "
                "jobs created before then are gone and must be created again"
            )
        raise falcon.HTTPNotFound(title="Unknown job", description=description)

    return handle


def _other_store(req, resp, exc: StoreMismatch, params) -> None:
    raise falcon.HTTPServiceUnavailable(description=str(exc), retry_after=30)


def _replicas_behind(req, resp, exc: ReplicasBehind, params) -> None:
    raise falcon.HTTPServiceUnavailable(
        description=f"the request was taken but is not yet safe from a failover ({exc}; "
        "PROGRESS_MIN_REPLICAS): send it again shortly (a repeated update does no harm)",
        retry_after=1,
    )


def _wrong_secret(req, resp, exc: resources.WrongSecret, params) -> None:
    raise falcon.HTTPForbidden(
        title="Wrong secret",
        description=f"job {exc.jobid!r} was created with a secret: 'secret' must match it",
    )


def _backend_unavailable(req, resp, exc, params) -> None:
    what = "unreachable"
    if isinstance(exc, MasterNotFoundError):  # Sentinel: between a master's loss and promotion
        what = "without a master (the sentinels name none: a failover may be under way)"
    raise falcon.HTTPServiceUnavailable(
        description=f"the progress store is {what}; try again shortly", retry_after=2
    )


def _backend_refuses(req, resp, exc: redis.exceptions.ResponseError, params) -> None:
    """Redis answered but refused (out of memory, read-only, cannot persist): an outage, 503.
    Any other error reply is a bug, and stays a 500."""
    reason = write_refusal(exc)
    if reason is None:  # logged by path alone: the query may hold a secret
        log.error("event=unexpected_redis_error path=%s", req.path, exc_info=exc)
        raise falcon.HTTPInternalServerError()
    raise falcon.HTTPServiceUnavailable(
        description=f"the progress store refuses writes ({reason}); try again shortly",
        retry_after=5,
    )
