"""`connector after-restore`: a store restored from a backup forgets what was delivered after the backup.

Why: the journal is what keeps a call from being logged twice. A delivery the backup shows as not done may have
reached the CRM since the backup was taken; run again as is, it logged the call and created the callback task a
second time (an exploratory run reproduced it on PostgreSQL and SQLite). This marks every action of every delivery
not recorded as succeeded as possibly written — in flight, as a crash leaves it — so the worker treats it as after a
crash: it looks each up by its idempotency key (the contact by its phone number) before it writes anything. One
lookup per action, once; on HubSpot a contact it created may also wait out the search index's window once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.config import Settings
from connector.errors import MappingError, PermanentError
from connector.ledger import Ledger
from connector.ledger.bulk import Mark
from connector.ledger.deliveries import JournalEntry
from connector.ledger.schema import ActionStatus
from connector.mapping.loader import LoadedMapping
from connector.mapping.planner import delivery_plan
from connector.mapping.sinks import load_sink_mappings
from connector.plan import HoldForReview, Plan

PAGE = 500
"""Deliveries read, planned and marked per transaction."""
OWNER = "after-restore"


@dataclass
class RestoreReport:
    """What `after-restore` found and marked."""

    deliveries: int = 0
    marked: int = 0
    unplanned: int = 0
    """Deliveries whose event or mapping no longer plans (their own delivery will say why): nothing marked."""

    def render(self) -> str:
        if not self.deliveries:
            return "every delivery in the store succeeded: nothing to look up"
        line = (
            f"{self.marked} actions of {self.deliveries} deliveries not recorded as succeeded will be looked up in "
            "the CRM (by their keys, the contact by its phone number) before anything is written again"
        )
        if self.unplanned:
            line += f"; {self.unplanned} could not be planned (their own delivery says why) and were left as they are"
        return line


def mark_after_restore(ledger: Ledger, settings: Settings) -> RestoreReport:
    """Mark the actions of every unfinished delivery as possibly written (see the module docstring)."""
    mappings = load_sink_mappings(settings)
    report = RestoreReport()
    after = 0
    while page := ledger.deliveries.unfinished(after_id=after, limit=PAGE):
        after = page[-1]["id"]
        journals = ledger.bulk.journals(d["id"] for d in page)
        events = ledger.bulk.events(d["event_id"] for d in page if not d["plan"])
        marks: list[Mark] = []
        for delivery in page:
            report.deliveries += 1
            plan = _plan(delivery, events.get(delivery["event_id"]), mappings.get(delivery["sink"]))
            if plan is None:
                report.unplanned += 1
                continue
            journal = journals[delivery["id"]]
            marks += [
                Mark(delivery["id"], action.key, action.kind, ActionStatus.IN_FLIGHT)
                for action in plan.actions
                if not isinstance(action, HoldForReview) and _unconfirmed(journal.get(action.key))
            ]
        if marks:
            ledger.bulk.write(OWNER, marks=marks)
        report.marked += len(marks)
    return report


def _unconfirmed(entry: JournalEntry | None) -> bool:
    """Not recorded as done: no entry (the backup predates the attempt) or one left in flight."""
    return entry is None or entry.status not in (ActionStatus.SUCCEEDED.value, ActionStatus.SKIPPED.value)


def _plan(delivery: dict[str, Any], event: dict[str, Any] | None, mapping: LoadedMapping | None) -> Plan | None:
    """Its plan, or None when it cannot be planned (its own delivery will say why)."""
    try:
        return delivery_plan(delivery["plan"], event, mapping, sink=delivery["sink"], event_id=delivery["event_id"])
    except (MappingError, PermanentError):
        return None
