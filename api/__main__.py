"""`python -m api`: serve the app with waitress."""

from __future__ import annotations

import logging

import waitress

from api import create_app
from tasks.celery_app import LOG_FORMAT
from tasks.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings.from_env()
    waitress.serve(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        threads=settings.web_threads,
        connection_limit=1000,
        ident="progress",
    )


if __name__ == "__main__":
    main()
