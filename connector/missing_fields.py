"""The per-sink "the CRM lacks fields" warning, kept current by the delivery engine.

A sink that had to leave fields out of a write (schema drift, see connector/sinks/drift.py) reports them in
``ActionResult.detail["skipped_fields"]``; this notes them in the ledger (``missing_fields``), where ``connector
status``, ``/readyz``, the dashboard and the ``connector_sink_missing_fields`` metric read them. A later successful
write of such a field clears it. Which fields are missing is cached here for a few seconds, so the common case
(nothing missing) costs no ledger write per delivery.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from connector.config import Settings
from connector.ledger import Ledger
from connector.ledger.engine import absent_sqlite_file
from connector.ledger.sinkstate import MissingField
from connector.plan import Action, CreateActivity, CreateTask, UpdateContact
from connector.sinks.base import ActionResult
from connector.sinks.drift import VALUE_CODES, missing_message

KNOWN_REFRESH_S = 15.0
"""How stale this process's view of another worker's notes may be before a write clears them."""
SHOWN = 20
"""Fields named in one warning line; the rest are counted (500 script questions would drown the message)."""


class MissingFieldTracker:
    """Notes refused fields and clears them when written again; one per delivery runner."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._known: dict[str, set[tuple[str, str]]] = {}
        self._loaded: dict[str, float] = {}

    def note(self, sink: str, event_id: str, fields: dict[str, str]) -> None:
        """``fields``: ``Object.Field`` → CRM code (as MissingFields carries them)."""
        pairs = {tuple(name.split(".", 1)): code for name, code in fields.items() if "." in name}
        self._note(sink, event_id, pairs)  # type: ignore[arg-type]

    def track(
        self,
        sink: str,
        event_id: str,
        written: Action,
        result: ActionResult,
        contact: ActionResult | None,
        skipped: dict[str, str],
    ) -> None:
        """After a successful write: note what it left out, clear what it wrote that was known missing."""
        if not isinstance(written, (UpdateContact, CreateActivity, CreateTask)):
            return
        obj = result.object or written.object or (contact.object if contact else None)
        if not obj:
            return
        if skipped:
            self._note(sink, event_id, {(obj, name): code for name, code in skipped.items()})
        sent = set(_field_names(written)) - set(skipped)
        known = self._known_for(sink)
        hits = [(obj, name) for name in sorted(sent) if (obj.lower(), name) in known]
        if hits:
            self._ledger.sinks.clear_missing(sink, hits)
            known.difference_update((o.lower(), n) for o, n in hits)

    def _note(self, sink: str, event_id: str, fields: dict[tuple[str, str], str]) -> None:
        self._ledger.sinks.note_missing(sink, fields, event_id)
        self._known_for(sink).update((obj.lower(), name) for obj, name in fields)

    def _known_for(self, sink: str) -> set[tuple[str, str]]:
        if time.monotonic() - self._loaded.get(sink, -KNOWN_REFRESH_S) >= KNOWN_REFRESH_S:
            self._known[sink] = {(m.object.lower(), m.field) for m in self._ledger.sinks.missing(sink)}
            self._loaded[sink] = time.monotonic()
        return self._known[sink]


def _field_names(action: UpdateContact | CreateActivity | CreateTask) -> Iterable[str]:
    if isinstance(action, UpdateContact):
        return [f.property for f in action.fields]
    return [*action.properties, *([action.idempotency_property] if action.idempotency_property else [])]


def warning(sink: str, fields: list[MissingField]) -> str | None:
    """The operator's one-line warning for a sink, or None when nothing is missing or refused."""
    if not fields:
        return None
    missing = [f.name for f in fields if f.code not in VALUE_CODES]
    refused = [f.name for f in fields if f.code in VALUE_CODES]
    parts = [missing_message(sink, _shown(missing))] if missing else []
    if refused:
        parts.append(
            f"the CRM refused the values written to {', '.join(_shown(refused))} (not an option of the "
            "property, or not of its type): fix the mapping or the property in the CRM, then replay"
        )
    return "; ".join(parts)


def _shown(names: list[str]) -> list[str]:
    return names[:SHOWN] + ([f"and {len(names) - SHOWN} more"] if len(names) > SHOWN else [])


def by_sink(ledger: Ledger) -> dict[str, list[MissingField]]:
    """Every sink's missing fields, in one query."""
    found: dict[str, list[MissingField]] = {}
    for item in ledger.sinks.missing():
        found.setdefault(item.sink, []).append(item)
    return found


def forget_after_check(settings: Settings, sink: str) -> int:
    """A schema check (crm-setup, validate) found every field the sink's mapping writes: clear its warning.

    Best effort: a store that cannot be opened here leaves the warning until the next successful write.
    """
    if absent_sqlite_file(settings.store):
        return 0  # no store yet, so no warning to clear (and opening it would create an empty database file)
    try:
        ledger = Ledger.open(settings.store, migrate_schema=False)
    except Exception:  # noqa: BLE001 - validate/crm-setup must not fail because the store is elsewhere
        return 0
    try:
        return ledger.sinks.clear_missing(sink)
    except Exception:  # noqa: BLE001 - e.g. a store not yet migrated to the missing_fields table
        return 0
    finally:
        ledger.dispose()
