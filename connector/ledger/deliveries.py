"""Delivery moves, each one transaction: claim, renew, journal an action, finish, sweep, requeue.

Claims are serialized (PostgreSQL: a transaction-scoped advisory lock; SQLite: `BEGIN IMMEDIATE`),
which makes one rule cheap to keep exactly: at most one delivery per (sink, contact) is leased at
any time, so two workers never race to create the same new contact. Precedence rules
(connector.precedence) make the order of a contact's calls irrelevant to its final state, so claims
need not wait for older calls of the same contact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, exists, func, or_, select, text, union_all, update

from connector.errors import LeaseLost
from connector.ledger._among import among, one_condition
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods
from connector.ledger.schema import (
    DUE_CONDITION,
    DUE_STATUSES,
    ActionStatus,
    DeliveryOutcome,
    DeliveryStatus,
    UTCDateTime,
    action_journal,
    attempts,
    deliveries,
    events,
)

_CLAIM_LOCK_KEY = 0x2C0_C1A1
_DUE = DUE_STATUSES
_DUE_SQL = text(DUE_CONDITION)
"""Due, as the queue index's literal predicate (connector.ledger.schema.DUE_CONDITION)."""


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to one worker, with what it needs to run."""

    id: int
    event_id: str
    sink: str
    attempts: int
    plan: str | None
    contact_key: str | None
    call_time: datetime


def _queue_heads(sinks: list[str], now: datetime, count: int) -> Select[Any]:
    """The first `count` due deliveries of these sinks in claim order: each sink's head read in order from the queue
    index (ix_deliveries_queue), then merged; asked as one `sink IN (…)`, PostgreSQL would sort every due row."""
    d = deliveries
    heads = [
        select(d.c.id, d.c.sink, d.c.contact_key, d.c.priority, d.c.due_at)
        .where(_DUE_SQL, d.c.sink == sink, d.c.due_at <= now)
        .order_by(d.c.priority, d.c.due_at, d.c.id)
        .limit(count)
        for sink in sorted(set(sinks))
    ]
    if len(heads) == 1:
        return heads[0]
    merged = union_all(*(select(head.subquery()) for head in heads)).subquery()
    return select(merged).order_by(merged.c.priority, merged.c.due_at, merged.c.id).limit(count)


@dataclass(frozen=True)
class JournalEntry:
    action_key: str
    kind: str
    status: str
    crm_id: str | None
    result: dict[str, Any] | None


@guard_public_methods
class DeliveryStore:
    """The delivery tables of a ledger; see the module docstring for the concurrency rules."""

    def __init__(self, engine: Engine, writes: Engine) -> None:
        self._engine = engine
        self._writes = writes

    # -- claiming ---------------------------------------------------------------------------

    def claim(self, worker: str, sinks: list[str], *, limit: int, lease_s: float) -> list[Claimed]:
        """Lease up to `limit` due deliveries of `sinks`, do-not-call first, one per contact.

        The candidates are read in claim order from the queue index (a few hundred entries per sink, not the
        backlog). Then only the chosen rows are leased, by an UPDATE that checks again that each is still due: a
        row another transaction moved meanwhile (a release, a hold) is not leased, and RETURNING says which were."""
        if not sinks or limit <= 0:
            return []
        now = utcnow()
        d = deliveries
        with self._writes.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK_KEY})
            busy_rows = connection.execute(
                select(d.c.sink, d.c.contact_key).where(
                    d.c.status == DeliveryStatus.LEASED.value,
                    d.c.lease_until > now,
                    d.c.sink.in_(sinks),
                    d.c.contact_key.is_not(None),
                )
            ).all()
            busy = {(r.sink, r.contact_key) for r in busy_rows}
            candidates = connection.execute(_queue_heads(sinks, now, limit * 4 + len(busy))).all()
            order: dict[int, int] = {}
            for row in candidates:
                key = (row.sink, row.contact_key)
                if row.contact_key is not None and key in busy:
                    continue
                busy.add(key)
                order[int(row.id)] = len(order)
                if len(order) == limit:
                    break
            if not order:
                return []
            leased = update(d).where(one_condition(connection, d.c.id, list(order)), _DUE_SQL, d.c.due_at <= now)
            leased = leased.values(
                status=DeliveryStatus.LEASED.value,
                lease_owner=worker,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=d.c.attempts + 1,
                updated_at=now,
            )
            claimed_columns = (d.c.id, d.c.event_id, d.c.sink, d.c.attempts, d.c.plan, d.c.contact_key, d.c.call_time)
            if connection.dialect.update_returning:
                rows = connection.execute(leased.returning(*claimed_columns)).all()
            else:  # SQLite before 3.35: BEGIN IMMEDIATE already kept every other writer out since the read
                connection.execute(leased)
                rows = connection.execute(select(*claimed_columns).where(d.c.id.in_(list(order)))).all()
        chosen = [
            Claimed(r.id, r.event_id, r.sink, r.attempts, r.plan, r.contact_key, r.call_time or now) for r in rows
        ]
        return sorted(chosen, key=lambda c: order[c.id])

    def renew(self, worker: str, delivery_ids: list[int], *, lease_s: float) -> list[int]:
        """Extend the leases this worker still holds; returns the ids it still holds."""
        if not delivery_ids:
            return []
        now = utcnow()
        held: list[int] = []
        with self._writes.begin() as connection:
            for condition in among(connection, deliveries.c.id, delivery_ids):
                result = connection.execute(
                    update(deliveries)
                    .where(
                        condition,
                        deliveries.c.lease_owner == worker,
                        deliveries.c.status == DeliveryStatus.LEASED.value,
                    )
                    .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)
                    .returning(deliveries.c.id)
                )
                held += [int(row.id) for row in result]
        return held

    def sweep_expired(self) -> int:
        """Return deliveries whose worker died (lease expired) to due; the journal decides lookups.

        Their `due_at` is kept (it passed before they were claimed): they are due at once and keep their place at
        the head of the queue, instead of waiting behind the whole backlog that arrived meanwhile."""
        now = utcnow()
        with self._writes.begin() as connection:
            result = connection.execute(
                update(deliveries)
                .where(deliveries.c.status == DeliveryStatus.LEASED.value, deliveries.c.lease_until < now)
                .values(status=DeliveryStatus.PENDING.value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return int(result.rowcount or 0)

    def release_claims_of(self, worker_ids: list[str]) -> int:
        """Return every delivery leased by these (dead) workers to due at once, without waiting for
        their leases to expire; an action they left `in_flight` is looked up before it is redone. Like
        `sweep_expired`, they keep their `due_at` and so their place in the queue."""
        if not worker_ids:
            return 0
        now = utcnow()
        with self._writes.begin() as connection:
            result = connection.execute(
                update(deliveries)
                .where(deliveries.c.status == DeliveryStatus.LEASED.value, deliveries.c.lease_owner.in_(worker_ids))
                .values(status=DeliveryStatus.PENDING.value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return int(result.rowcount or 0)

    # -- the action journal -----------------------------------------------------------------

    def journal(self, delivery_id: int) -> dict[str, JournalEntry]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(action_journal).where(action_journal.c.delivery_id == delivery_id))
            return {
                r.action_key: JournalEntry(
                    r.action_key, r.kind, r.status, r.crm_id, json.loads(r.result) if r.result else None
                )
                for r in rows
            }

    def journal_mark(
        self,
        delivery_id: int,
        action_key: str,
        kind: str,
        status: ActionStatus,
        *,
        crm_id: str | None = None,
        result: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """Record an action's state; committed before the next CRM call is made.

        With `owner`, only while that worker still holds the delivery's lease (LeaseLost
        otherwise): a worker whose claims were released as dead must not start another CRM call
        for them, since the new owner may be making it.
        """
        now = utcnow()
        values = {
            "status": status.value,
            "crm_id": crm_id,
            "result": json.dumps(result) if result else None,
            "updated_at": now,
        }
        with self._writes.begin() as connection:
            if owner is not None:
                held = select(deliveries.c.id).where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.lease_owner == owner,
                    deliveries.c.status == DeliveryStatus.LEASED.value,
                )
                if connection.dialect.name == "postgresql":
                    held = held.with_for_update()
                if connection.execute(held).first() is None:
                    raise LeaseLost("this worker's lease on the delivery was released; another worker owns it")
            changed = connection.execute(
                update(action_journal)
                .where(action_journal.c.delivery_id == delivery_id, action_journal.c.action_key == action_key)
                .values(values)
            ).rowcount
            if not changed:
                connection.execute(
                    action_journal.insert(),
                    {"delivery_id": delivery_id, "action_key": action_key, "kind": kind, **values},
                )

    def journal_forget(self, delivery_id: int, action_key: str) -> None:
        """Drop an action's journal entry so the next attempt runs it again (a stale contact)."""
        with self._writes.begin() as connection:
            connection.execute(
                action_journal.delete().where(
                    action_journal.c.delivery_id == delivery_id, action_journal.c.action_key == action_key
                )
            )

    def save_plan(self, delivery_id: int, plan_json: str) -> None:
        with self._writes.begin() as connection:
            connection.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(plan=plan_json))

    # -- finishing --------------------------------------------------------------------------

    def start_attempt(self, delivery_id: int, number: int, worker: str) -> int:
        """Open an attempt record. It is numbered after the delivery's previous records (1, 2, 3… across
        replays, which reset the retry counter `number` comes from); `number` 0 marks a record that is no
        attempt (claims given back unstarted) and is kept as 0."""
        if number > 0:
            previous = (
                select(func.coalesce(func.max(attempts.c.number), 0) + 1)
                .where(attempts.c.delivery_id == delivery_id)
                .scalar_subquery()
            )
            values: dict[str, Any] = {"number": previous}
        else:
            values = {"number": number}
        with self._writes.begin() as connection:
            result = connection.execute(
                attempts.insert().values(delivery_id=delivery_id, worker=worker, started_at=utcnow(), **values)
            )
            return int(result.inserted_primary_key[0])

    def finish(
        self,
        delivery_id: int,
        attempt_id: int,
        worker: str,
        *,
        status: DeliveryStatus,
        outcome: str,
        due_at: datetime | None = None,
        error: dict[str, Any] | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """Move a leased delivery to its next state and close the attempt, in one transaction.

        Returns False (and changes nothing) when this worker no longer holds the lease: another
        worker took over after it expired, and its result wins.
        """
        now = utcnow()
        error = error or {}
        values: dict[str, Any] = {"status": status.value, "lease_owner": None, "lease_until": None, "updated_at": now}
        if due_at is not None:
            values["due_at"] = due_at
        if status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.HELD):
            values["finished_at"] = now
        if status is DeliveryStatus.DEAD or status is DeliveryStatus.HELD:
            values["dead_reason"] = error.get("message")
        if error.get("message") is not None:
            values["last_error"] = error.get("message")
        if not count_attempt:
            values["attempts"] = deliveries.c.attempts - 1
        with self._writes.begin() as connection:
            moved = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.lease_owner == worker,
                    deliveries.c.status == DeliveryStatus.LEASED.value,
                )
                .values(values)
            ).rowcount
            connection.execute(
                update(attempts)
                .where(attempts.c.id == attempt_id)
                .values(
                    finished_at=now,
                    outcome=outcome if moved else DeliveryOutcome.LEASE_LOST,
                    error_kind=error.get("kind"),
                    status_code=error.get("status"),
                    crm_code=error.get("code"),
                    message=error.get("message"),
                )
            )
        return bool(moved)

    # -- requeueing (replay) -----------------------------------------------------------------

    def requeue(
        self, *, event_id: str | None = None, status: DeliveryStatus | None = None, sink: str | None = None
    ) -> int:
        """Make matching finished deliveries due again with a fresh plan and attempt count; never one whose event's
        content was purged by retention (there is nothing left to deliver)."""
        purged = exists().where(events.c.event_id == deliveries.c.event_id, events.c.purged_at.is_not(None))
        conditions = [deliveries.c.status != DeliveryStatus.LEASED.value, ~purged]
        if event_id is not None:
            conditions.append(deliveries.c.event_id == event_id)
        if status is not None:
            conditions.append(deliveries.c.status == status.value)
        if sink is not None:
            conditions.append(deliveries.c.sink == sink)
        now = utcnow()
        with self._writes.begin() as connection:
            return int(
                connection.execute(
                    update(deliveries)
                    .where(and_(*conditions))
                    .values(
                        status=DeliveryStatus.PENDING.value,
                        due_at=now,
                        attempts=0,
                        plan=None,
                        dead_reason=None,
                        finished_at=None,
                        updated_at=now,
                    )
                ).rowcount
                or 0
            )

    def add_missing(self, event_id: str, sinks: list[str], priority: int) -> int:
        """Create deliveries for sinks configured after the event arrived (replay)."""
        with self._writes.begin() as connection:
            existing = {
                r.sink for r in connection.execute(select(deliveries.c.sink).where(deliveries.c.event_id == event_id))
            }
            event = connection.execute(
                select(events.c.contact_key, events.c.received_at, events.c.purged_at).where(
                    events.c.event_id == event_id
                )
            ).first()
            if event is None or event.purged_at is not None:
                return 0
            now = utcnow()
            rows = [
                {
                    "event_id": event_id,
                    "sink": s,
                    "status": DeliveryStatus.PENDING.value,
                    "priority": priority,
                    "attempts": 0,
                    "due_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "contact_key": event.contact_key,
                    "call_time": event.received_at,
                }
                for s in sinks
                if s not in existing
            ]
            if rows:
                connection.execute(deliveries.insert(), rows)
            return len(rows)

    # -- reading ----------------------------------------------------------------------------

    def attempts_for(self, delivery_id: int) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def unfinished(self, *, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Deliveries not recorded as succeeded (id, event_id, sink, status, plan), by id from ``after_id`` on, at
        most ``limit``: what a store restored from a backup may have delivered since (connector.ops.restore)."""
        d = deliveries.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(d.id, d.event_id, d.sink, d.status, d.plan)
                .where(d.id > after_id, d.status != DeliveryStatus.SUCCEEDED.value)
                .order_by(d.id)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """(sink, status) → number of deliveries."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.sink, deliveries.c.status, func.count()).group_by(
                    deliveries.c.sink, deliveries.c.status
                )
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    def oldest_due(self, sink: str) -> datetime | None:
        with self._engine.connect() as connection:
            return connection.execute(
                select(func.min(deliveries.c.due_at, type_=UTCDateTime())).where(
                    deliveries.c.sink == sink,
                    or_(deliveries.c.status.in_(_DUE), deliveries.c.status == DeliveryStatus.LEASED.value),
                )
            ).scalar_one_or_none()
