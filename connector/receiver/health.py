"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import socket

from flask import Blueprint, Response, jsonify

from connector.errors import StoreError
from connector.receiver.webhook import state
from connector.sink_health import assess

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests; says nothing about the store."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready to acknowledge webhooks: the store takes a write (not only `SELECT 1`: a full disk or a
    read-only server answer that), its schema is current, and (with sinks) a delivery worker is
    alive. Everything else the health model knows (connector.sink_health: paused or rate-limited sinks, a
    mapping that changed but does not load, missing CRM fields, a worker that exited lately) is listed as a
    warning with its fix, and the answer stays 200: receiving still works then."""
    current = state()
    checks: dict[str, str] = {}
    warnings: list[str] = []
    try:
        current.ledger.probe(f"readyz:{socket.gethostname()}")
        checks["store"] = "ok"
        health = assess(current.ledger, current.settings)
    except StoreError as exc:
        checks["store"] = str(exc)
        response = jsonify({"status": "not_ready", "checks": checks, "sinks": {}, "warnings": []})
        response.status_code = 503
        return response
    engine = health.engine
    if engine.state != "idle":
        checks["worker"] = f"{engine.live_workers} alive" if engine.live_workers else "no live delivery worker"
        if engine.state == "dead" and engine.command is None and engine.reason:
            checks["worker"] = engine.reason  # one runs but cannot write its heartbeat: no worker to start
    if engine.last_exit:
        checks["worker_last_exit"] = engine.last_exit
    if engine.state == "restarted" and engine.reason:
        warnings.append(engine.reason)
    sinks: dict[str, object] = {}
    for name, sink in health.sinks.items():
        entry: dict[str, object] = {
            "state": sink.state,
            "paused": sink.state == "paused",
            "reason": next((c.reason for c in sink.conditions if c.state == "paused"), None),
        }
        for condition in sink.conditions:
            if condition.state == "missing_fields":  # a warning, not "not ready": the rest of each event still lands
                entry["warning"] = condition.reason
            warnings.append(f"sinks.{name}: {condition.state}: {condition.advice()}")
        entry["conditions"] = [{"state": c.state, "reason": c.reason, "command": c.command} for c in sink.conditions]
        sinks[name] = entry
    ready = health.delivering
    body: dict[str, object] = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "sinks": sinks,
        "warnings": warnings,
    }
    if not ready and engine.command:
        body["fix"] = engine.command
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: answers by status, attempts, latencies, backlog, oldest due, paused sinks."""
    from connector.metrics import exposition

    return Response(exposition(state().metrics_registry), mimetype="text/plain; version=0.0.4")
