"""Operator views of the ledger (status of an event, a quarantined body) and quarantine replay."""

from __future__ import annotations

import json
from typing import Any

from connector.config import Settings
from connector.errors import PayloadError
from connector.ledger import IngestStatus, Ledger
from connector.missing_fields import by_sink as missing_by_sink
from connector.missing_fields import warning as missing_warning
from connector.receiver.ingest import content_hash, parse_body
from connector.sink_health import assess


def _body_text(body: bytes) -> str:
    return body.decode("utf-8", errors="backslashreplace")


def event_status(ledger: Ledger, event_id: str) -> dict[str, Any] | None:
    """Everything known about one event: stored body, normalized form, deliveries."""
    row = ledger.get_event(event_id)
    if row is None:
        return None
    return {
        "event_id": row["event_id"],
        "received_at": row["received_at"].isoformat(),
        "content_type": row["content_type"],
        "body_sha256": row["body_sha256"],
        "body": _body_text(row["body"]),
        "normalized": json.loads(row["normalized"]),
        "end_reason": row["end_reason"],
        "purged_at": _plain(row["purged_at"]),
        "deliveries": [_delivery_report(ledger, d) for d in ledger.deliveries_for(event_id)],
    }


def _delivery_report(ledger: Ledger, delivery: dict[str, Any]) -> dict[str, Any]:
    """One sink's side of an event: state, plan, every attempt, and what each action produced."""
    report = {k: _plain(v) for k, v in delivery.items() if k != "plan"}
    report["plan"] = json.loads(delivery["plan"]) if delivery.get("plan") else None
    report["attempts"] = [
        {k: _plain(v) for k, v in a.items() if k != "delivery_id"}
        for a in ledger.deliveries.attempts_for(delivery["id"])
    ]
    journal = ledger.deliveries.journal(delivery["id"])
    report["actions"] = [
        {"key": e.action_key, "kind": e.kind, "status": e.status, "crm_id": e.crm_id, "result": e.result}
        for e in journal.values()
    ]
    report["crm_ids"] = {e.kind: e.crm_id for e in journal.values() if e.crm_id}
    return report


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def health_report(ledger: Ledger, settings: Settings) -> dict[str, Any]:
    """Sinks (state with every condition and its fix, backlog, oldest due) and the delivery engine (live
    workers, recent exits): what an operator checks first. States come from connector.sink_health, the
    model /readyz, the dashboard and /metrics show too."""
    health = assess(ledger, settings)
    counts = ledger.deliveries.counts()
    states = {s.sink: s for s in ledger.sinks.all()}
    missing = missing_by_sink(ledger)
    modelled = health.to_dict()["sinks"]
    sinks = {}
    for name in sorted(set(settings.sinks) | {sink for sink, _ in counts}):
        state = states.get(name)
        oldest = ledger.deliveries.oldest_due(name)
        model = modelled.get(name, {"state": "ok", "conditions": []})
        sinks[name] = {
            "configured": name in settings.sinks,
            "state": model["state"],
            "conditions": model["conditions"],
            "paused": bool(state and state.paused),
            "paused_reason": state.reason if state else None,
            "blocked_until": _plain(state.blocked_until) if state and state.blocked_until else None,
            "mapping_error": state.mapping_error if state else None,
            "deliveries": {status: n for (sink, status), n in sorted(counts.items()) if sink == name},
            "oldest_due": _plain(oldest) if oldest else None,
            "missing_fields": {f.name: f.code for f in missing.get(name, [])},
            "warning": missing_warning(name, missing.get(name, [])),
        }
    workers = [{k: _plain(v) for k, v in w.items()} for w in health.workers]
    exits = [{k: _plain(v) for k, v in w.items()} for w in ledger.sinks.recent_exits(within_s=3600)]
    return {"sinks": sinks, "engine": health.to_dict()["engine"], "live_workers": workers, "worker_exits": exits}


def quarantined_report(ledger: Ledger, quarantine_id: int) -> dict[str, Any] | None:
    """A quarantined body with why it was refused."""
    row = ledger.get_quarantined(quarantine_id)
    if row is None:
        return None
    return {**row, "errors": json.loads(row["errors"]), "body": _body_text(row["body"])}


def replay_quarantined(ledger: Ledger, settings: Settings, quarantine_id: int) -> dict[str, Any]:
    """Run a quarantined body through normalization and storage again, with today's code.

    The quarantine row stays (audit); it is marked replayed when the body became an event, or
    annotated with why it is still refused.
    """
    row = ledger.get_quarantined(quarantine_id)
    if row is None:
        return {"quarantine_id": quarantine_id, "status": 404, "result": "not found"}
    if row["body_truncated"]:
        result = "cannot replay: the body was larger than the limit and only its beginning was kept"
        ledger.note_replay(quarantine_id, result, settled=False)
        return {"quarantine_id": quarantine_id, "status": 413, "result": result}
    try:
        document, event = parse_body(row["body"], default_region=settings.phone.default_region)
    except PayloadError as exc:
        result = f"still refused: {exc.status} {exc.code}"
        ledger.note_replay(quarantine_id, result, settled=False)
        return {"quarantine_id": quarantine_id, "status": exc.status, "result": result, "errors": exc.errors}
    outcome = ledger.record_event(
        event,
        body=row["body"],
        content_type=row["content_type"],
        content_hash=content_hash(document),
        sinks=settings.enabled_sinks(),
        keep_conflicting_body=False,
    )
    status = {IngestStatus.ACCEPTED: 202, IngestStatus.DUPLICATE: 200, IngestStatus.CONFLICT: 409}[outcome.status]
    result = f"{outcome.status.value} as event {event.id}"
    ledger.note_replay(quarantine_id, result, settled=outcome.status is not IngestStatus.CONFLICT)
    return {"quarantine_id": quarantine_id, "status": status, "result": result, "event_id": event.id}
