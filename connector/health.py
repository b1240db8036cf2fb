"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import socket

from flask import Blueprint, Response, jsonify

from connector.errors import StoreError
from connector.missing_fields import by_sink as missing_by_sink
from connector.missing_fields import warning as missing_warning
from connector.receiver import state

blueprint = Blueprint("health", __name__)

WORKER_STALE_S = 10.0
"""A worker whose heartbeat (every 2 s, connector.worker.HEARTBEAT_S) is older than this is not live."""
EXIT_MEMORY_S = 600.0
"""How long a worker's exit reason is shown."""


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests; says nothing about the store."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready to acknowledge webhooks: the store takes a write (not only `SELECT 1`: a full disk or a
    read-only server answer that), its schema is current, and (with sinks) a delivery worker is
    alive; when one died lately, why. Paused sinks are listed with why; receiving still works then. A sink whose
    CRM lacks fields carries a `warning` naming them (still ready: the rest of every event lands)."""
    current = state()
    checks: dict[str, str] = {}
    ready = True
    try:
        current.ledger.probe(f"readyz:{socket.gethostname()}")
        checks["store"] = "ok"
    except StoreError as exc:
        checks["store"] = str(exc)
        ready = False
    sinks: dict[str, object] = {}
    if ready and current.settings.enabled_sinks():
        live = current.ledger.sinks.live_workers(within_s=WORKER_STALE_S)
        checks["worker"] = f"{len(live)} alive" if live else "no live delivery worker"
        exits = current.ledger.sinks.recent_exits(within_s=EXIT_MEMORY_S)
        if exits:
            checks["worker_last_exit"] = f"{exits[0]['worker_id']}: {exits[0]['exit_reason']}"
        ready = bool(live)
        states = {s.sink: s for s in current.ledger.sinks.all()}
        missing = missing_by_sink(current.ledger)
        for name in current.settings.enabled_sinks():
            found = states.get(name)
            sinks[name] = {"paused": bool(found and found.paused), "reason": found.reason if found else None}
            if missing.get(name):  # a warning, not "not ready": the rest of each event still lands
                sinks[name]["warning"] = missing_warning(name, missing[name])
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks, "sinks": sinks})
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: answers by status, attempts, latencies, backlog, oldest due, paused sinks."""
    from connector.metrics import exposition

    return Response(exposition(state().metrics_registry), mimetype="text/plain; version=0.0.4")
