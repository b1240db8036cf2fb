"""The WSGI entry point for deployment command lines: ``gunicorn "connector.app:create_app()"``.

The app factory lives in ``connector.receiver.app``; this name is kept because deployments already point at it.
"""

from connector.receiver.app import create_app

__all__ = ["create_app"]
