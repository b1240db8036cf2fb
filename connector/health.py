"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from connector.errors import StoreError
from connector.receiver import state

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests; says nothing about the store."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready to acknowledge webhooks: the store answers and its schema is current."""
    current = state()
    checks: dict[str, str] = {}
    ready = True
    try:
        current.ledger.ping()
        checks["store"] = "ok"
    except StoreError as exc:
        checks["store"] = str(exc)
        ready = False
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks,
                        "sinks": current.settings.enabled_sinks()})
    response.status_code = 200 if ready else 503
    return response
