"""`python -m api`: serve the app with waitress."""

from __future__ import annotations

import waitress

from api import create_app
from tasks.settings import Settings


def main() -> None:
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
