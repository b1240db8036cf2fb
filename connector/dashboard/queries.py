"""Read-only ledger queries the dashboard needs and the ledger package does not offer.

SQLAlchemy Core against `connector.ledger.schema`; identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from connector.ledger import Ledger
from connector.ledger.schema import attempts, deliveries, events, quarantine, rate_buckets

PAGE_SIZE = 50


@dataclass(frozen=True)
class EventRow:
    """One line of the events list."""

    event_id: str
    received_at: datetime
    end_reason: str | None
    contact_key: str | None
    deliveries: dict[str, str] = field(default_factory=dict)
    """sink → delivery status."""


@dataclass(frozen=True)
class Page:
    """A page of results and where it sits in the whole."""

    rows: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_condition(q: str) -> ColumnElement[bool] | None:
    """An event id (exact or prefix), phone digits (3 or more) or an outcome (end_reason substring)."""
    q = q.strip()
    if not q:
        return None
    like = _escape_like(q)
    conditions: list[ColumnElement[bool]] = [
        events.c.event_id == q,
        events.c.event_id.like(like + "%", escape="\\"),
        events.c.end_reason.like("%" + _escape_like(q.lower().replace(" ", "_")) + "%", escape="\\"),
    ]
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 3:
        conditions.append(events.c.contact_key.like("%" + digits + "%"))
    return or_(*conditions)


def search_events(
    ledger: Ledger,
    *,
    q: str = "",
    status: str | None = None,
    sink: str | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
) -> Page:
    """Events newest first, matching `q` and having a delivery in `status` (of `sink`) when given."""
    conditions: list[ColumnElement[bool]] = []
    found = _search_condition(q)
    if found is not None:
        conditions.append(found)
    if status or sink:
        wanted = [deliveries.c.event_id == events.c.event_id]
        if status:
            wanted.append(deliveries.c.status == status)
        if sink:
            wanted.append(deliveries.c.sink == sink)
        conditions.append(exists().where(and_(*wanted)))
    where = and_(*conditions) if conditions else None
    columns = (events.c.event_id, events.c.received_at, events.c.end_reason, events.c.contact_key)
    listing = select(*columns).order_by(events.c.received_at.desc(), events.c.event_id.desc())
    counting = select(func.count()).select_from(events)
    if where is not None:
        listing, counting = listing.where(where), counting.where(where)
    page = max(1, page)
    with ledger.engine.connect() as connection:
        total = int(connection.execute(counting).scalar_one())
        rows = connection.execute(listing.limit(size).offset((page - 1) * size)).all()
        ids = [r.event_id for r in rows]
        states: dict[str, dict[str, str]] = {}
        if ids:
            for d in connection.execute(
                select(deliveries.c.event_id, deliveries.c.sink, deliveries.c.status)
                .where(deliveries.c.event_id.in_(ids))
                .order_by(deliveries.c.sink)
            ):
                states.setdefault(d.event_id, {})[d.sink] = d.status
    return Page(
        [EventRow(r.event_id, r.received_at, r.end_reason, r.contact_key, states.get(r.event_id, {})) for r in rows],
        total,
        page,
        size,
    )


def _last_attempts(connection: Connection, delivery_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The newest attempt of each delivery (its error kind and CRM code explain a dead letter)."""
    if not delivery_ids:
        return {}
    newest = (
        select(attempts.c.delivery_id, func.max(attempts.c.id).label("id"))
        .where(attempts.c.delivery_id.in_(delivery_ids))
        .group_by(attempts.c.delivery_id)
        .subquery()
    )
    rows = connection.execute(select(attempts).join(newest, attempts.c.id == newest.c.id)).mappings()
    return {r["delivery_id"]: dict(r) for r in rows}


_with_event = deliveries.join(events, events.c.event_id == deliveries.c.event_id)


def failed_deliveries(
    ledger: Ledger, *, status: str = "dead", sink: str | None = None, page: int = 1, size: int = PAGE_SIZE
) -> Page:
    """Dead (or held) deliveries that can be replayed, most recently finished first, each with its last attempt.

    A dead letter of a call purged by retention is left out: nothing is left to send (`purged_failed` counts them)."""
    condition = and_(_failed(status, sink), events.c.purged_at.is_(None))
    listing = (
        select(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.sink,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.dead_reason,
            deliveries.c.last_error,
            deliveries.c.finished_at,
            deliveries.c.updated_at,
            events.c.end_reason,
            events.c.contact_key,
        )
        .join(events, events.c.event_id == deliveries.c.event_id)
        .where(condition)
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
    )
    page = max(1, page)
    with ledger.engine.connect() as connection:
        total = int(connection.execute(select(func.count()).select_from(_with_event).where(condition)).scalar_one())
        rows = [dict(r) for r in connection.execute(listing.limit(size).offset((page - 1) * size)).mappings()]
        last = _last_attempts(connection, [r["id"] for r in rows])
    for row in rows:
        row["last_attempt"] = last.get(row["id"])
    return Page(rows, total, page, size)


def purged_failed(ledger: Ledger, *, status: str = "dead", sink: str | None = None) -> int:
    """Dead (or held) deliveries of calls purged by retention: kept for the record, no longer replayable."""
    condition = and_(_failed(status, sink), events.c.purged_at.is_not(None))
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(_with_event).where(condition)).scalar_one())


def _failed(status: str, sink: str | None) -> ColumnElement[bool]:
    condition = deliveries.c.status == status
    return and_(condition, deliveries.c.sink == sink) if sink else condition


def deliveries_by_id(ledger: Ledger, ids: list[int], *, status: str | None = None) -> list[tuple[str, str]]:
    """(event id, sink) of the given deliveries (only those in `status`, when given)."""
    if not ids:
        return []
    query = select(deliveries.c.event_id, deliveries.c.sink).where(deliveries.c.id.in_(ids))
    if status:
        query = query.where(deliveries.c.status == status)
    with ledger.engine.connect() as connection:
        return [(r.event_id, r.sink) for r in connection.execute(query.order_by(deliveries.c.id))]


def count_by_status(ledger: Ledger) -> dict[str, int]:
    """Deliveries per status, all sinks together."""
    with ledger.engine.connect() as connection:
        rows = connection.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
        return {r[0]: int(r[1]) for r in rows}


def count_events(ledger: Ledger) -> int:
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


def count_quarantine(ledger: Ledger, *, include_replayed: bool = False) -> int:
    query = select(func.count()).select_from(quarantine)
    if not include_replayed:
        query = query.where(quarantine.c.replayed_at.is_(None))
    with ledger.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def list_quarantine(ledger: Ledger, *, include_replayed: bool = False, page: int = 1, size: int = PAGE_SIZE) -> Page:
    """Quarantined bodies newest first, without the bodies themselves."""
    columns = [c for c in quarantine.c if c.name != "body"]
    query = select(*columns).order_by(quarantine.c.id.desc())
    if not include_replayed:
        query = query.where(quarantine.c.replayed_at.is_(None))
    page = max(1, page)
    with ledger.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query.limit(size).offset((page - 1) * size)).mappings()]
    return Page(rows, count_quarantine(ledger, include_replayed=include_replayed), page, size)


def rate_bucket(ledger: Ledger, sink: str) -> tuple[float, float] | None:
    """(tokens left, epoch seconds of the last take) of a sink's shared bucket in the store, if any."""
    with ledger.engine.connect() as connection:
        row = connection.execute(
            select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(rate_buckets.c.sink == sink)
        ).first()
    return (float(row.tokens), float(row.updated_at)) if row else None
