"""The HTTP side: a thin Falcon app that validates, enqueues and answers."""

from api.app import create_app

__all__ = ["create_app"]
