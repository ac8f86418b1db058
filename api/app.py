"""The WSGI app: routes, error handlers, and the parts each resource receives."""

from __future__ import annotations

import falcon
import kombu.exceptions
import redis

from api import operations, resources
from tasks.enqueue import UpdateQueue
from tasks.runtime import connect
from tasks.settings import Settings
from tasks.store import Store

BACKEND_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    kombu.exceptions.OperationalError,
)


def create_app(
    settings: Settings | None = None, store: Store | None = None, log_stream=None
) -> falcon.App:
    """The app, built from what it is given; `log_stream` takes the request log (stderr)."""
    settings = settings or Settings.from_env()
    store = store or Store(connect(settings))
    updates = UpdateQueue(store, settings)

    request_log = operations.RequestLog(store, log_stream)
    app = falcon.App(cors_enable=True, middleware=[request_log])
    app.req_options.strip_url_path_trailing_slash = False
    app.resp_options.secure_cookies_by_default = False
    routes = {
        "/progress/create": resources.Create(store, settings),
        "/progress/update": resources.Update(store, settings, updates),
        "/progress/status": resources.Status(store, settings),
        "/progress/render": resources.Render(store, settings),
        "/progress/show": resources.Show(store, settings),
        "/progress/jobs": resources.Jobs(store, settings),
        "/progress/": resources.Jobs(store, settings, as_page=True),
        "/openapi.json": resources.OpenAPI(settings),
        "/healthz": operations.Health(store, settings),
        "/metrics": operations.Metrics(store),
    }
    for path, resource in routes.items():
        app.add_route(path, resource)
    app.add_error_handler(resources.JobNotFound, _job_not_found)
    app.add_error_handler(resources.WrongSecret, _wrong_secret)
    app.add_error_handler(BACKEND_ERRORS, _backend_unavailable)
    return app


def _job_not_found(req, resp, exc: resources.JobNotFound, params) -> None:
    raise falcon.HTTPNotFound(
        title="Unknown job",
        description=f"there is no job with jobid {exc.jobid!r} (never created, or expired)",
    )


def _wrong_secret(req, resp, exc: resources.WrongSecret, params) -> None:
    raise falcon.HTTPForbidden(
        title="Wrong secret",
        description=f"job {exc.jobid!r} was created with a secret: 'secret' must match it",
    )


def _backend_unavailable(req, resp, exc, params) -> None:
    raise falcon.HTTPServiceUnavailable(
        description="the progress store is unreachable; try again shortly", retry_after=2
    )
