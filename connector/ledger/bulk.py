"""The batch runner's store work: a constant number of transactions per batch, whatever its size.

Under a backlog one worker runs up to a hundred deliveries together (connector.engine.batch). Written one row per
transaction, their journal, attempts, plans and precedence bookkeeping cost about eleven commits per CRM request and
bound the drain rate far below the CRM's. Here each of those is one statement (executemany, or an upsert with
`INSERT … ON CONFLICT`, which SQLite ≥ 3.24 and PostgreSQL both have) inside one transaction per stage. The
exactly-once rules are those of DeliveryStore: `in_flight` marks check the lease owner and commit before the CRM
call; everything else may ride along with the next transaction (a crash before it commits leaves `in_flight`,
which is looked up before anything is rewritten).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from connector.ledger._among import among, one_condition
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods
from connector.ledger._upsert import update_many, upsert_many
from connector.ledger.deliveries import JournalEntry
from connector.ledger.schema import (
    ActionStatus,
    DeliveryOutcome,
    DeliveryStatus,
    action_journal,
    attempts,
    deliveries,
    events,
    field_state,
)
from connector.precedence import WrittenField


@dataclass(frozen=True)
class Mark:
    """One action's new journal state."""

    delivery_id: int
    action_key: str
    kind: str
    status: ActionStatus
    crm_id: str | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class FieldWrite:
    """What the connector wrote to one contact property (the precedence bookkeeping of field_state)."""

    sink: str
    contact_ref: str
    property: str
    value: Any
    rank: int
    call_time: datetime
    event_id: str


@dataclass(frozen=True)
class Finish:
    """A leased delivery's next state and its attempt's outcome (as DeliveryStore.finish takes them)."""

    delivery_id: int
    attempt_id: int
    status: DeliveryStatus
    outcome: str
    due_at: datetime | None = None
    error: dict[str, Any] | None = None
    count_attempt: bool = True


@dataclass(frozen=True)
class Written:
    """What one `write` did: deliveries whose lease was lost (their in-flight marks were not written, so no CRM
    call may follow), and deliveries finished (the others were no longer this worker's; their result is not kept)."""

    lease_lost: frozenset[int]
    finished: frozenset[int]


@guard_public_methods
class BulkStore:
    """Reads and writes of many deliveries at once; see the module docstring."""

    def __init__(self, engine: Engine, writes: Engine) -> None:
        self._engine = engine
        self._writes = writes

    # -- reads ------------------------------------------------------------------------------------

    def events(self, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """event id → {"normalized", "received_at", "purged_at"}, for the events that exist."""
        found: dict[str, dict[str, Any]] = {}
        columns = (events.c.event_id, events.c.normalized, events.c.received_at, events.c.purged_at)
        with self._engine.connect() as connection:
            for condition in among(connection, events.c.event_id, set(event_ids)):
                for row in connection.execute(select(*columns).where(condition)):
                    found[row.event_id] = {
                        "normalized": row.normalized,
                        "received_at": row.received_at,
                        "purged_at": row.purged_at,
                    }
        return found

    def journals(self, delivery_ids: Iterable[int]) -> dict[int, dict[str, JournalEntry]]:
        """Every delivery's journal (action key → entry); deliveries without one map to {}."""
        ids = sorted(set(delivery_ids))
        found: dict[int, dict[str, JournalEntry]] = {i: {} for i in ids}
        with self._engine.connect() as connection:
            for condition in among(connection, action_journal.c.delivery_id, ids):
                for r in connection.execute(select(action_journal).where(condition)):
                    found[r.delivery_id][r.action_key] = JournalEntry(
                        r.action_key, r.kind, r.status, r.crm_id, json.loads(r.result) if r.result else None
                    )
        return found

    def written(self, sink: str, wanted: dict[str, set[str]]) -> dict[tuple[str, str], WrittenField]:
        """(contact ref, property) → what the connector last wrote there, for the wanted refs and properties.

        Asked as `contact_ref ∈ refs AND property ∈ properties` (the primary key's prefix) and filtered here: a
        list of (ref, property) pairs is planned far slower by PostgreSQL."""
        properties = sorted(set().union(*wanted.values())) if wanted else []
        found: dict[tuple[str, str], WrittenField] = {}
        f = field_state
        with self._engine.connect() as connection:
            asked = one_condition(connection, f.c.property, properties, "properties")
            for refs in among(connection, f.c.contact_ref, wanted, "refs"):
                rows = connection.execute(select(f).where(f.c.sink == sink, refs, asked))
                found.update(
                    {
                        (r.contact_ref, r.property): WrittenField(
                            json.loads(r.value) if r.value else None, r.rank, r.call_time, r.event_id
                        )
                        for r in rows
                        if r.property in wanted[r.contact_ref]
                    }
                )
        return found

    # -- writes -----------------------------------------------------------------------------------

    def start(self, worker: str, numbered: list[tuple[int, int]], plans: dict[int, str]) -> dict[int, int]:
        """Open an attempt for each (delivery id, attempt number) and save the new plans, in one transaction;
        returns delivery id → attempt id."""
        now = utcnow()
        rows = [{"delivery_id": d, "number": n, "worker": worker, "started_at": now} for d, n in numbered]
        with self._writes.begin() as connection:
            started: dict[int, int] = {}
            if rows:
                inserted = connection.execute(
                    attempts.insert().returning(attempts.c.id, attempts.c.delivery_id, sort_by_parameter_order=True),
                    rows,
                )
                started = {r.delivery_id: int(r.id) for r in inserted}
            if plans:  # an executemany: as one array, a hundred JSON plans cost more to quote and parse
                connection.execute(
                    update(deliveries).where(deliveries.c.id == bindparam("b_id")).values(plan=bindparam("b_plan")),
                    [{"b_id": d, "b_plan": p} for d, p in plans.items()],
                )
        return started

    def write(
        self,
        worker: str,
        *,
        marks: list[Mark] | None = None,
        in_flight: list[Mark] | None = None,
        fields: list[FieldWrite] | None = None,
        finishes: list[Finish] | None = None,
    ) -> Written:
        """One transaction: journal `marks`, then `in_flight` marks of the deliveries this worker still leases,
        then contact fields, then finish deliveries (only those still leased to this worker)."""
        now = utcnow()
        with self._writes.begin() as connection:
            lost: set[int] = set()
            if in_flight:
                wanted = {m.delivery_id for m in in_flight}
                lost = wanted - _still_leased(connection, worker, wanted)
                in_flight = [m for m in in_flight if m.delivery_id not in lost]
            journal_rows = _last_per_key([*(marks or []), *(in_flight or [])], lambda m: (m.delivery_id, m.action_key))
            if journal_rows:
                upsert_many(connection, action_journal, [_journal_row(m, now) for m in journal_rows], *_JOURNAL_UPSERT)
            field_rows = _last_per_key(fields or [], lambda w: (w.sink, w.contact_ref, w.property))
            if field_rows:
                upsert_many(connection, field_state, [_field_row(w) for w in field_rows], *_FIELDS_UPSERT)
            finished: set[int] = set()
            if finishes:
                finished = _still_leased(connection, worker, {f.delivery_id for f in finishes})
                _finish_all(connection, worker, finishes, finished, now)
        return Written(frozenset(lost), frozenset(finished))


def _last_per_key(items: Iterable[Any], key: Any) -> list[Any]:
    """One row per key, the last given winning: PostgreSQL refuses an upsert that touches a row twice."""
    return list({key(item): item for item in items}.values())


def _still_leased(connection: Connection, worker: str, delivery_ids: set[int]) -> set[int]:
    """Which of these deliveries this worker leases, locked (PostgreSQL) until the transaction ends, so a worker
    declaring it dead meanwhile waits for this transaction and then releases them."""
    held: set[int] = set()
    for condition in among(connection, deliveries.c.id, delivery_ids):
        query = select(deliveries.c.id).where(
            condition,
            deliveries.c.lease_owner == worker,
            deliveries.c.status == DeliveryStatus.LEASED.value,
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        held.update(int(r.id) for r in connection.execute(query))
    return held


_JOURNAL_UPSERT = (("delivery_id", "action_key"), ("status", "crm_id", "result", "updated_at"))
"""A journal row's key and the columns a new mark overwrites."""


def _journal_row(mark: Mark, now: datetime) -> dict[str, Any]:
    return {
        "delivery_id": mark.delivery_id,
        "action_key": mark.action_key,
        "kind": mark.kind,
        "status": mark.status.value,
        "crm_id": mark.crm_id,
        "result": json.dumps(mark.result) if mark.result else None,
        "updated_at": now,
    }


_FIELDS_UPSERT = (("sink", "contact_ref", "property"), ("value", "rank", "call_time", "event_id"))
"""A contact field's key and the columns a new write overwrites."""


def _field_row(write: FieldWrite) -> dict[str, Any]:
    return {
        "sink": write.sink,
        "contact_ref": write.contact_ref,
        "property": write.property,
        "value": json.dumps(write.value),
        "rank": write.rank,
        "call_time": write.call_time,
        "event_id": write.event_id,
    }


def _finish_all(connection: Connection, worker: str, finishes: list[Finish], held: set[int], now: datetime) -> None:
    """DeliveryStore.finish for many: one UPDATE per shape of values (in a batch nearly all are 'succeeded'),
    then every attempt closed in one more (connector.ledger._upsert.update_many)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    counted: dict[tuple[str, ...], bool] = {}
    for finish in finishes:
        if finish.delivery_id not in held:
            continue
        values = _finish_values(finish, now)
        shape = (*sorted(values), str(finish.count_attempt))
        shapes.setdefault(shape, []).append({"id": finish.delivery_id, **values})
        counted[shape] = finish.count_attempt
    for shape, rows in shapes.items():
        update_many(
            connection,
            deliveries,
            rows,
            "id",
            where={"lease_owner": worker, "status": DeliveryStatus.LEASED.value},
            decrement=None if counted[shape] else "attempts",
        )
    update_many(
        connection,
        attempts,
        [
            {
                "id": f.attempt_id,
                "finished_at": now,
                "outcome": f.outcome if f.delivery_id in held else DeliveryOutcome.LEASE_LOST,
                "error_kind": (f.error or {}).get("kind"),
                "status_code": (f.error or {}).get("status"),
                "crm_code": (f.error or {}).get("code"),
                "message": (f.error or {}).get("message"),
            }
            for f in finishes
        ],
        "id",
    )


def _finish_values(finish: Finish, now: datetime) -> dict[str, Any]:
    """The deliveries row's new values, exactly as DeliveryStore.finish sets them."""
    error = finish.error or {}
    values: dict[str, Any] = {
        "status": finish.status.value,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
    }
    if finish.due_at is not None:
        values["due_at"] = finish.due_at
    if finish.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.HELD):
        values["finished_at"] = now
    if finish.status in (DeliveryStatus.DEAD, DeliveryStatus.HELD):
        values["dead_reason"] = error.get("message")
    if error.get("message") is not None:
        values["last_error"] = error.get("message")
    return values
