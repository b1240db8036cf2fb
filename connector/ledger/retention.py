"""Retention: empty what the store keeps about people once it is older than `store.retention_days`.

Why not delete events: the event row's primary key is what makes a late retry of the same call a duplicate (200,
nothing delivered twice) and a different body under a used id a conflict (409). So a purged event keeps its id,
its two hashes (of the raw body and of the canonical JSON), its received time and a documented end reason; its raw
body, normalized form and phone number are emptied and `purged_at` is set. Around it:

- its deliveries lose their plan (rendered transcript, phone, names), their contact key and their error texts, and
  its attempts their messages (a CRM's error can quote the value it refused), keeping statuses, codes and times;
- its journal entries lose their results (they can name refused values), keeping action, status and CRM id;
- quarantined bodies older than the cut-off are deleted (a refused body is nothing but its content);
- cached phone → contact look-ups older than the cut-off are deleted (the next call looks the number up again);
- remembered values (`field_state`: answers, statuses, dates) of calls older than the cut-off are emptied, keeping
  their rank and call time so precedence still holds, except JSON `true`: the connector's own record that a contact
  asked not to be called keeps a later callback off their calendar, and an opt-out is kept as long as the contact
  is (the store does not know which property is the opt-out, so every yes-flag stays: a flag holds no text).

Only settled events are purged: an event with a delivery still pending, leased, retrying or held keeps everything
until it settles. A dead-lettered delivery counts as settled: past retention it can no longer be replayed.
Each batch is one short write transaction, so on SQLite the receiver never waits long for the write lock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Exists,
    Select,
    case,
    delete,
    exists,
    func,
    select,
    update,
)

from connector.ledger._among import among
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods
from connector.ledger.schema import (
    DeliveryStatus,
    action_journal,
    attempts,
    contact_cache,
    deliveries,
    events,
    field_state,
    quarantine,
)
from connector.payload import EndReason

PURGED_NORMALIZED = '{"purged": true}'
"""What a purged event's `normalized` column holds: valid JSON for every reader, and no call record."""
UNSETTLED = (
    DeliveryStatus.PENDING.value,
    DeliveryStatus.LEASED.value,
    DeliveryStatus.RETRY_SCHEDULED.value,
    DeliveryStatus.HELD.value,
)
"""Deliveries that may still need the event's content."""
KEPT_ANSWER = "true"
"""The one remembered value purging keeps (JSON `true`: the do-not-call the connector wrote, and other yes-flags)."""
BATCH = 500
DOCUMENTED_END_REASONS = sorted(reason.value for reason in EndReason)


@dataclass
class PurgeCounts:
    """What one purge emptied or deleted (or, for a dry run, would)."""

    events: int = 0
    quarantined: int = 0
    cached_contacts: int = 0
    answers: int = 0
    unsettled_kept: int = 0
    """Events older than the cut-off kept whole because a delivery of theirs has not settled."""
    more_left: bool = False
    """Stopped at `max_batches` with settled old events still to purge."""

    def as_dict(self) -> dict[str, int | bool]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def anything(self) -> bool:
        """Whether anything was (or would be) purged."""
        return any((self.events, self.quarantined, self.cached_contacts, self.answers))


def cutoff(retention_days: float, now: datetime | None = None) -> datetime:
    """The instant before which `retention_days` has passed."""
    return (now or utcnow()) - timedelta(days=retention_days)


@guard_public_methods
class RetentionStore:
    """Purges personal data older than a cut-off (see the module docstring)."""

    def __init__(self, engine: Engine, writes: Engine) -> None:
        self._engine = engine
        self._writes = writes

    def purge(
        self, before: datetime, *, dry_run: bool = False, batch: int = BATCH, max_batches: int | None = None
    ) -> PurgeCounts:
        """Purge everything received (or cached, or answered) before `before`, in batches; returns the counts.

        A documented end reason stays on a purged event (the dashboard counts by it); any other is the sender's free
        text, which may hold a name or a number, and is emptied too. With `max_batches`, at most that many batches of
        events (`more_left` then says whether some remain): a worker purges a little between deliveries."""
        if dry_run:
            return self._count(before)
        total = PurgeCounts()
        batches = 0
        while True:
            with self._writes.begin() as connection:
                done = self._purge_events(connection, before, batch)
            total.events += done
            batches += 1
            if done < batch:
                break
            if max_batches is not None and batches >= max_batches:
                total.more_left = True
                break
        with self._writes.begin() as connection:
            total.quarantined = _rowcount(
                connection.execute(delete(quarantine).where(quarantine.c.received_at < before))
            )
            total.cached_contacts = _rowcount(
                connection.execute(delete(contact_cache).where(contact_cache.c.updated_at < before))
            )
            total.answers = _rowcount(
                connection.execute(update(field_state).where(*_old_answers(before)).values(value=None))
            )
        with self._engine.connect() as connection:
            total.unsettled_kept = _count(connection, _old_events(before).where(_unsettled()))
        return total

    def _purge_events(self, connection: Connection, before: datetime, batch: int) -> int:
        """One batch of settled old events and everything hanging off them; how many events."""
        chosen = _old_events(before).where(events.c.purged_at.is_(None), ~_unsettled())
        ids = list(connection.execute(chosen.order_by(events.c.received_at).limit(batch)).scalars())
        if not ids:
            return 0
        now = utcnow()
        kept_reason = case((events.c.end_reason.in_(DOCUMENTED_END_REASONS), events.c.end_reason), else_=None)
        for condition in among(connection, events.c.event_id, ids, "ids"):
            connection.execute(
                update(events)
                .where(condition)
                .values(body=b"", normalized=PURGED_NORMALIZED, contact_key=None, end_reason=kept_reason, purged_at=now)
            )
        delivery_ids: list[int] = []
        for condition in among(connection, deliveries.c.event_id, ids, "ids"):
            delivery_ids += connection.execute(select(deliveries.c.id).where(condition)).scalars()
            connection.execute(
                update(deliveries)
                .where(condition)
                .values(plan=None, contact_key=None, last_error=None, dead_reason=None, updated_at=now)
            )
        for owned in among(connection, attempts.c.delivery_id, delivery_ids, "deliveries"):
            connection.execute(update(attempts).where(owned).values(message=None))
        for owned in among(connection, action_journal.c.delivery_id, delivery_ids, "deliveries"):
            connection.execute(update(action_journal).where(owned).values(result=None))
        return len(ids)

    def _count(self, before: datetime) -> PurgeCounts:
        with self._engine.connect() as connection:
            old = _old_events(before).where(events.c.purged_at.is_(None))
            return PurgeCounts(
                events=_count(connection, old.where(~_unsettled())),
                quarantined=_count(connection, select(quarantine.c.id).where(quarantine.c.received_at < before)),
                cached_contacts=_count(
                    connection, select(contact_cache.c.sink).where(contact_cache.c.updated_at < before)
                ),
                answers=_count(connection, select(field_state.c.sink).where(*_old_answers(before))),
                unsettled_kept=_count(connection, old.where(_unsettled())),
            )


def _old_events(before: datetime) -> Select[tuple[str]]:
    return select(events.c.event_id).where(events.c.received_at < before)


def _unsettled() -> Exists:
    """The event (of the enclosing query) has a delivery that may still need its content."""
    return exists().where(deliveries.c.event_id == events.c.event_id, deliveries.c.status.in_(UNSETTLED))


def _old_answers(before: datetime) -> tuple[ColumnElement[bool], ...]:
    return (field_state.c.call_time < before, field_state.c.value.is_not(None), field_state.c.value != KEPT_ANSWER)


def _count(connection: Connection, query: Select[Any]) -> int:
    return int(connection.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _rowcount(result: CursorResult[Any]) -> int:
    return int(result.rowcount or 0)
