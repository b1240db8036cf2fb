"""The dashboard's actions (POST, CSRF-checked by the blueprint): replay events, dead letters, quarantine.

Each action redirects (303) back to its page with only counts in the query string, so a reload
never repeats it and no text from the request is ever reflected into a page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from connector.dashboard import queries
from connector.dashboard.context import state
from connector.errors import ConnectorError
from connector.ledger import DeliveryStatus
from connector.ledger.schema import MAX_ROW_ID
from connector.ops.replay import replay_dead_letters, replay_event, replay_quarantine
from connector.ops.reports import replay_quarantined

log = logging.getLogger(__name__)

MAX_SELECTED = 1000


def register(bp: Blueprint) -> None:
    """Add the action routes to the blueprint."""
    bp.add_url_rule("/events/replay", "replay_event", replay_one_event, methods=["POST"])
    bp.add_url_rule("/dead/replay", "replay_dead", replay_dead, methods=["POST"])
    bp.add_url_rule("/quarantine/replay", "replay_quarantine", replay_quarantined_bodies, methods=["POST"])


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values[:MAX_SELECTED] if v.isdigit() and 0 < int(v) <= MAX_ROW_ID]


def _see_other(endpoint: str, **values: Any) -> Response:
    kept: dict[str, Any] = {k: v for k, v in values.items() if v not in (None, "")}
    return redirect(url_for(endpoint, **kept), code=303)


def replay_one_event() -> Response:
    """Re-plan and requeue one event's deliveries (all its sinks, or the one chosen)."""
    current = state()
    event_id = request.form.get("event_id", "")
    sink = request.form.get("sink") or None
    if sink is not None and sink not in current.settings.sinks:
        sink = None
    try:
        result = replay_event(current.ledger, current.settings, event_id, sink=sink)
    except ConnectorError:
        return _see_other("dashboard.events", q=event_id)
    log.info("dashboard: event replayed", extra={"event_id": event_id, "sink": sink, "requeued": result["requeued"]})
    return _see_other(
        "dashboard.event", id=event_id, requeued=result["requeued"], added=result["new_deliveries"] or None
    )


def replay_dead() -> Response:
    """One delivery (`one`), the ticked ones (`action=selected`) or every one shown (`action=all`)."""
    current = state()
    status = "held" if request.form.get("status") == "held" else "dead"
    sink = request.form.get("sink") or None
    if request.form.get("one"):
        targets = queries.deliveries_by_id(current.ledger, _ids([request.form["one"]]), status=status)
    elif request.form.get("action") == "selected":
        targets = queries.deliveries_by_id(current.ledger, _ids(request.form.getlist("selected")), status=status)
    elif request.form.get("action") == "all":
        if status == "dead":
            requeued = replay_dead_letters(current.ledger, sink=sink)["requeued"]
        else:
            requeued = current.ledger.deliveries.requeue(status=DeliveryStatus.HELD, sink=sink)
        log.info("dashboard: all %s deliveries replayed", status, extra={"sink": sink, "requeued": requeued})
        return _see_other("dashboard.dead", status=status if status == "held" else None, sink=sink, requeued=requeued)
    else:
        targets = []
    requeued = 0
    for event_id, delivery_sink in targets:
        try:
            requeued += replay_event(current.ledger, current.settings, event_id, sink=delivery_sink)["requeued"]
        except ConnectorError as exc:  # its content was purged by retention (or the event is gone): nothing to send
            log.info("dashboard: delivery not replayed: %s", exc, extra={"event_id": event_id})
    log.info("dashboard: %s deliveries replayed", status, extra={"requeued": requeued})
    return _see_other("dashboard.dead", status=status if status == "held" else None, sink=sink, requeued=requeued)


def replay_quarantined_bodies() -> Response:
    """Run quarantined bodies through ingestion again: one, the ticked ones, or all not yet replayed."""
    current = state()
    back = request.form.get("back")
    if request.form.get("action") == "all":
        summary = replay_quarantine(current.ledger, current.settings)
        replayed, accepted = summary["replayed"], summary["accepted"]
    else:
        chosen = _ids([request.form["one"]]) if request.form.get("one") else _ids(request.form.getlist("selected"))
        results = [replay_quarantined(current.ledger, current.settings, qid) for qid in chosen]
        replayed, accepted = len(results), sum(r["status"] == 202 for r in results)
        if back == "item" and len(chosen) == 1:
            return _see_other("dashboard.quarantined", quarantine_id=chosen[0], replayed=replayed, accepted=accepted)
    log.info("dashboard: quarantine replayed", extra={"replayed": replayed, "accepted": accepted})
    return _see_other("dashboard.quarantine", replayed=replayed, accepted=accepted)
