"""Replay: re-plan with the current mapping and re-deliver, never repeating an action that succeeded.

The action journal survives a replay; only the plan and the attempt count are reset. Because an
action's key is derived from the event id and its role (`2x-<id>:activity`), a re-planned action
that already succeeded is recognised and skipped, and only what is new or failed is executed.
"""

from __future__ import annotations

from typing import Any

from connector.config import Settings
from connector.errors import ConnectorError
from connector.ledger import DeliveryStatus, Ledger
from connector.ledger.store import DEFAULT_PRIORITY, DNC_PRIORITY
from connector.ops.reports import replay_quarantined


def replay_event(ledger: Ledger, settings: Settings, event_id: str, *, sink: str | None = None) -> dict[str, Any]:
    """Requeue one event's deliveries; sinks configured since it arrived get a delivery too."""
    row = ledger.get_event(event_id)
    if row is None:
        raise ConnectorError(f"no event with id {event_id!r}")
    if row["purged_at"] is not None:
        raise ConnectorError(
            f"event {event_id!r} cannot be replayed: its content was purged by retention on "
            f"{row['purged_at']:%Y-%m-%d} (store.retention_days)"
        )
    sinks = [sink] if sink else settings.enabled_sinks()
    priority = DNC_PRIORITY if row["end_reason"] == "do_not_call" else DEFAULT_PRIORITY
    added = ledger.deliveries.add_missing(event_id, sinks, priority)
    requeued = sum(ledger.deliveries.requeue(event_id=event_id, sink=name) for name in sinks)
    return {"event_id": event_id, "requeued": requeued, "new_deliveries": added}


def replay_dead_letters(ledger: Ledger, *, sink: str | None = None) -> dict[str, Any]:
    """Requeue every dead-lettered delivery (of one sink, optionally)."""
    return {"requeued": ledger.deliveries.requeue(status=DeliveryStatus.DEAD, sink=sink)}


def replay_quarantine(ledger: Ledger, settings: Settings) -> dict[str, Any]:
    """Run every quarantined body (not yet replayed) through ingestion again."""
    rows = ledger.list_quarantine(limit=1_000_000)
    results = [replay_quarantined(ledger, settings, row["id"]) for row in rows]
    return {"replayed": len(results), "accepted": sum(r["status"] == 202 for r in results), "results": results}
