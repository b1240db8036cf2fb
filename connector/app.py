"""Flask application factory: the receiver, the health probes and the dashboard, with JSON errors everywhere.

It assembles the HTTP side of every layer, so it sits above them (the receiver package does not import the
dashboard). `gunicorn "connector.app:create_app()"` works: without arguments the factory reads the config
file named by the CONNECTOR_CONFIG environment variable.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from connector import dashboard
from connector.config import Settings, load_settings
from connector.errors import ConfigError, ConfigProblem
from connector.ledger import Ledger
from connector.receiver import health, webhook

log = logging.getLogger(__name__)

CONFIG_ENV = "CONNECTOR_CONFIG"


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None) -> Flask:
    """Build the WSGI app.

    Args:
        settings: the validated configuration; read from $CONNECTOR_CONFIG when omitted.
        ledger: an open ledger (tests inject one); opened and migrated from `settings.store` when omitted.
    """
    if settings is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise ConfigError(CONFIG_ENV, [ConfigProblem("<env>", "set CONNECTOR_CONFIG to the config file's path")])
        settings = load_settings(path)
    if ledger is None:
        ledger = Ledger.open(settings.store)
    app = Flask("connector")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    webhook.init_app(app, settings, ledger)
    app.register_blueprint(health.blueprint)
    dashboard.init_app(app, settings, ledger)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    if settings.receiver.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # outermost, so that the webhook's own WSGI layer (webhook.WebhookRoute) sees the client's address too
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.receiver.proxy_hops)  # type: ignore[method-assign]
    return app


def _http_error(exc: HTTPException) -> Response:
    response = jsonify({"error": (exc.name or "error").lower().replace(" ", "_"), "detail": exc.description})
    response.status_code = exc.code or 500
    return response


def _unexpected_error(exc: Exception) -> Response:
    log.exception("unhandled error: %s", exc.__class__.__name__)
    response = jsonify({"error": "internal_error", "detail": "the request failed; nothing was acknowledged"})
    response.status_code = 500
    return response
