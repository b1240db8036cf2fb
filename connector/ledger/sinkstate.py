"""Per-sink shared state: paused (auth) and blocked (rate limit) sinks, written contact fields,
worker heartbeats, and the token bucket that keeps all workers of a store inside a CRM's budget."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, text, update

from connector.ledger._among import among
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods
from connector.ledger.liveness import host_key, pid_is_gone
from connector.ledger.schema import contact_cache, field_state, missing_fields, rate_buckets, sink_state, workers
from connector.precedence import WrittenField


@dataclass(frozen=True)
class SinkStatus:
    sink: str
    paused: bool
    reason: str | None
    paused_at: datetime | None
    next_probe_at: datetime | None
    blocked_until: datetime | None
    mapping_error: str | None = None
    """The sink's mapping file changed but does not load (the previous mapping stays in use): every problem, one
    `FILE:LINE: message` per line."""
    mapping_error_at: datetime | None = None


def _status(row: Any) -> SinkStatus:
    return SinkStatus(
        row.sink,
        row.paused,
        row.reason,
        row.paused_at,
        row.next_probe_at,
        row.blocked_until,
        row.mapping_error,
        row.mapping_error_at,
    )


@dataclass(frozen=True)
class MissingField:
    """One field a sink's CRM refused as missing or not writable (schema drift)."""

    sink: str
    object: str
    field: str
    code: str
    event_id: str | None
    first_seen_at: datetime
    last_seen_at: datetime

    @property
    def name(self) -> str:
        return f"{self.object}.{self.field}"


def _store_now(connection: Any, local_now: datetime) -> Any:
    """Heartbeats are written and judged by one clock: the server's on PostgreSQL (workers on
    several hosts may disagree by seconds, and a worker is dead after a few), the local one on
    SQLite (one host)."""
    return func.now() if connection.dialect.name == "postgresql" else local_now


@guard_public_methods
class SinkStateStore:
    """Shared, durable facts about sinks and workers; every worker of a store sees the same."""

    def __init__(self, engine: Engine, writes: Engine) -> None:
        self._engine = engine
        self._writes = writes

    # -- paused and blocked sinks -------------------------------------------------------------

    def status(self, sink: str) -> SinkStatus:
        with self._engine.connect() as connection:
            row = connection.execute(select(sink_state).where(sink_state.c.sink == sink)).first()
        if row is None:
            return SinkStatus(sink, False, None, None, None, None)
        return _status(row)

    def all(self) -> list[SinkStatus]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(sink_state).order_by(sink_state.c.sink)).all()
        return [_status(r) for r in rows]

    def pause(self, sink: str, reason: str, *, probe_in_s: float) -> None:
        """Stop claiming for this sink until a credentials probe succeeds."""
        now = utcnow()
        self._upsert(
            sink, paused=True, reason=reason[:2000], paused_at=now, next_probe_at=now + timedelta(seconds=probe_in_s)
        )

    def schedule_probe(self, sink: str, *, probe_in_s: float) -> None:
        self._upsert(sink, next_probe_at=utcnow() + timedelta(seconds=probe_in_s))

    def resume(self, sink: str) -> None:
        self._upsert(sink, paused=False, reason=None, paused_at=None, next_probe_at=None)

    def block_until(self, sink: str, until: datetime) -> None:
        """Rate-limited: no worker calls this sink's CRM before `until` (never shortens a block)."""
        current = self.status(sink).blocked_until
        if current is None or until > current:
            self._upsert(sink, blocked_until=until)

    # -- a mapping that changed but does not load ---------------------------------------------------

    def note_mapping_error(self, sink: str, error: str) -> None:
        """The sink's mapping file changed and does not load; the worker keeps the previous mapping meanwhile."""
        self._upsert(sink, mapping_error=error[:4000], mapping_error_at=utcnow())

    def clear_mapping_error(self, sink: str) -> bool:
        """The sink's mapping loads again; True when an error was recorded (so the caller says it is fixed)."""
        with self._writes.begin() as connection:
            return bool(
                connection.execute(
                    update(sink_state)
                    .where(sink_state.c.sink == sink, sink_state.c.mapping_error.is_not(None))
                    .values(mapping_error=None, mapping_error_at=None, updated_at=utcnow())
                ).rowcount
            )

    def _upsert(self, sink: str, **values: Any) -> None:
        now = utcnow()
        with self._writes.begin() as connection:
            changed = connection.execute(
                update(sink_state).where(sink_state.c.sink == sink).values(updated_at=now, **values)
            ).rowcount
            if not changed:
                row = {"sink": sink, "paused": False, "updated_at": now, **values}
                connection.execute(sink_state.insert().values(row))

    # -- contact fields written by the connector (precedence) -----------------------------------

    def written(self, sink: str, contact_ref: str, properties: list[str]) -> dict[str, WrittenField]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(field_state).where(
                    field_state.c.sink == sink,
                    field_state.c.contact_ref == contact_ref,
                    field_state.c.property.in_(properties),
                )
            )
            return {
                r.property: WrittenField(json.loads(r.value) if r.value else None, r.rank, r.call_time, r.event_id)
                for r in rows
            }

    def record_written(
        self, sink: str, contact_ref: str, fields: dict[str, tuple[Any, int, datetime]], event_id: str
    ) -> None:
        """Remember what was written, so an older or lower-ranked call never overwrites it."""
        with self._writes.begin() as connection:
            for prop, (value, rank, call_time) in fields.items():
                values = {"value": json.dumps(value), "rank": rank, "call_time": call_time, "event_id": event_id}
                changed = connection.execute(
                    update(field_state)
                    .where(
                        field_state.c.sink == sink,
                        field_state.c.contact_ref == contact_ref,
                        field_state.c.property == prop,
                    )
                    .values(values)
                ).rowcount
                if not changed:
                    connection.execute(
                        field_state.insert().values(sink=sink, contact_ref=contact_ref, property=prop, **values)
                    )

    # -- fields the CRM lacks (schema drift) ----------------------------------------------------------

    def note_missing(self, sink: str, fields: dict[tuple[str, str], str], event_id: str | None) -> None:
        """Remember fields ((object, field) → CRM code) a write had to leave out, for the operator's warning."""
        now = utcnow()
        with self._writes.begin() as connection:
            for (obj, name), code in fields.items():
                key = and_(
                    missing_fields.c.sink == sink,
                    missing_fields.c.object == obj[:64],
                    missing_fields.c.field == name[:200],
                )
                values = {"code": code[:64], "event_id": event_id, "last_seen_at": now}
                if not connection.execute(update(missing_fields).where(key).values(values)).rowcount:
                    connection.execute(
                        missing_fields.insert().values(
                            sink=sink, object=obj[:64], field=name[:200], first_seen_at=now, **values
                        )
                    )

    def clear_missing(self, sink: str, fields: list[tuple[str, str]] | None = None) -> int:
        """Forget missing fields of a sink: these (object, field) pairs (a write of them succeeded), or all of them
        (crm-setup found every field). Object names compare case-insensitively (Salesforce's are)."""
        condition = missing_fields.c.sink == sink
        if fields is not None:
            if not fields:
                return 0
            condition = and_(
                condition,
                or_(
                    *(
                        and_(func.lower(missing_fields.c.object) == obj.lower(), missing_fields.c.field == name)
                        for obj, name in fields
                    )
                ),
            )
        with self._writes.begin() as connection:
            return int(connection.execute(missing_fields.delete().where(condition)).rowcount or 0)

    def missing(self, sink: str | None = None) -> list[MissingField]:
        """Fields currently known missing, per sink (all sinks when None), oldest first."""
        query = select(missing_fields).order_by(missing_fields.c.sink, missing_fields.c.object, missing_fields.c.field)
        if sink is not None:
            query = query.where(missing_fields.c.sink == sink)
        with self._engine.connect() as connection:
            return [
                MissingField(r.sink, r.object, r.field, r.code, r.event_id, r.first_seen_at, r.last_seen_at)
                for r in connection.execute(query)
            ]

    # -- the contact cache -------------------------------------------------------------------------

    def cached_contact(self, sink: str, contact_key: str, *, max_age_s: float) -> tuple[str, str] | None:
        """(object, crm id) resolved for this phone number within `max_age_s`, by any worker."""
        cutoff = utcnow() - timedelta(seconds=max_age_s)
        with self._engine.connect() as connection:
            row = connection.execute(
                select(contact_cache.c.object, contact_cache.c.crm_id).where(
                    contact_cache.c.sink == sink,
                    contact_cache.c.contact_key == contact_key,
                    contact_cache.c.updated_at >= cutoff,
                )
            ).first()
        return (row.object, row.crm_id) if row else None

    def cache_contact(self, sink: str, contact_key: str, object_name: str, crm_id: str) -> None:
        now = utcnow()
        values = {"object": object_name, "crm_id": crm_id, "updated_at": now}
        with self._writes.begin() as connection:
            changed = connection.execute(
                update(contact_cache)
                .where(contact_cache.c.sink == sink, contact_cache.c.contact_key == contact_key)
                .values(values)
            ).rowcount
            if not changed:
                connection.execute(contact_cache.insert().values(sink=sink, contact_key=contact_key, **values))

    def cached_contacts(self, sink: str, contact_keys: list[str], *, max_age_s: float) -> dict[str, tuple[str, str]]:
        """``cached_contact`` for many numbers in one query (per 500 on SQLite; the batch runner's resolve stage)."""
        cutoff = utcnow() - timedelta(seconds=max_age_s)
        found: dict[str, tuple[str, str]] = {}
        with self._engine.connect() as connection:
            for condition in among(connection, contact_cache.c.contact_key, set(contact_keys)):
                rows = connection.execute(
                    select(contact_cache.c.contact_key, contact_cache.c.object, contact_cache.c.crm_id).where(
                        contact_cache.c.sink == sink, condition, contact_cache.c.updated_at >= cutoff
                    )
                )
                found.update({row.contact_key: (row.object, row.crm_id) for row in rows})
        return found

    def cache_contacts(self, sink: str, contacts: dict[str, tuple[str, str]]) -> None:
        """``cache_contact`` for many numbers (E.164 → (object, crm id)) in one transaction: an upsert on
        PostgreSQL and SQLite (both have ``ON CONFLICT``), so a concurrent writer of the same number never fails it."""
        if not contacts:
            return
        now = utcnow()
        rows = [
            {"sink": sink, "contact_key": key, "object": obj, "crm_id": crm_id, "updated_at": now}
            for key, (obj, crm_id) in sorted(contacts.items())
        ]
        with self._writes.begin() as connection:
            if connection.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(contact_cache)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[contact_cache.c.sink, contact_cache.c.contact_key],
                    set_={
                        "object": statement.excluded.object,
                        "crm_id": statement.excluded.crm_id,
                        "updated_at": statement.excluded.updated_at,
                    },
                ),
                rows,
            )

    def forget_contact(self, sink: str, contact_key: str) -> None:
        with self._writes.begin() as connection:
            connection.execute(
                contact_cache.delete().where(contact_cache.c.sink == sink, contact_cache.c.contact_key == contact_key)
            )

    # -- workers --------------------------------------------------------------------------------

    def heartbeat(self, worker_id: str) -> None:
        now = utcnow()
        with self._writes.begin() as connection:
            beat = _store_now(connection, now)
            changed = connection.execute(
                update(workers)
                .where(workers.c.worker_id == worker_id)
                .values(heartbeat_at=beat, stopped_at=None, exit_reason=None)
            ).rowcount
            if not changed:
                connection.execute(
                    workers.insert().values(
                        worker_id=worker_id,
                        pid=os.getpid(),
                        hostname=socket.gethostname()[:255],
                        host_key=host_key(),
                        started_at=now,
                        heartbeat_at=beat,
                    )
                )

    def worker_stopped(self, worker_id: str, reason: str | None = None) -> None:
        with self._writes.begin() as connection:
            connection.execute(
                update(workers).where(workers.c.worker_id == worker_id).values(stopped_at=utcnow(), exit_reason=reason)
            )

    def process_exited(self, pid: int, reason: str, *, worker_prefix: str) -> None:
        """A supervisor saw one of its children on this host exit: mark it stopped with why, at once
        (so its claims return without waiting), or record the reason when it never heartbeat."""
        now = utcnow()
        mine = (workers.c.host_key == host_key(), workers.c.pid == pid, workers.c.stopped_at.is_(None))
        with self._writes.begin() as connection:
            changed = connection.execute(
                update(workers).where(*mine).values(stopped_at=now, exit_reason=reason[:2000])
            ).rowcount
            if not changed:
                worker_id = f"{worker_prefix}:{socket.gethostname()}:{pid}"[:128]
                connection.execute(workers.delete().where(workers.c.worker_id == worker_id))
                connection.execute(
                    workers.insert().values(
                        worker_id=worker_id,
                        pid=pid,
                        hostname=socket.gethostname()[:255],
                        host_key=host_key(),
                        started_at=now,
                        heartbeat_at=now,
                        stopped_at=now,
                        exit_reason=reason[:2000],
                    )
                )

    def dead_workers(self, *, me: str, stale_s: float, judge_by_age: bool = True) -> list[str]:
        """Workers that hold nothing any more: stopped, or silent for `stale_s`, or (same host) whose
        process is gone. `judge_by_age=False` trusts only the definite signs (after this worker's own
        store outage, everyone's heartbeat looks old)."""
        with self._engine.connect() as connection:
            cutoff = _store_now(connection, utcnow()) - timedelta(seconds=stale_s)
            rows = connection.execute(
                select(
                    workers.c.worker_id,
                    workers.c.pid,
                    workers.c.host_key,
                    workers.c.stopped_at,
                    (workers.c.heartbeat_at < cutoff).label("stale"),
                ).where(workers.c.worker_id != me)
            ).all()
        here = host_key()
        return [
            r.worker_id
            for r in rows
            if r.stopped_at is not None or (judge_by_age and r.stale) or (r.host_key == here and pid_is_gone(r.pid))
        ]

    def declare_dead(self, worker_ids: list[str], reason: str) -> None:
        if not worker_ids:
            return
        with self._writes.begin() as connection:
            connection.execute(
                update(workers)
                .where(workers.c.worker_id.in_(worker_ids), workers.c.stopped_at.is_(None))
                .values(stopped_at=utcnow(), exit_reason=reason)
            )

    def live_workers(self, *, within_s: float) -> list[dict[str, Any]]:
        """Workers that heartbeat within `within_s` and did not stop, less those on this host whose process is
        gone: a worker killed a moment ago is dead at once, not only once its last heartbeat has aged."""
        cutoff = utcnow() - timedelta(seconds=within_s)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(workers).where(workers.c.heartbeat_at >= cutoff, workers.c.stopped_at.is_(None))
            ).mappings()
            found = [dict(r) for r in rows]
        here = host_key()
        return [w for w in found if not (w["host_key"] == here and w["pid"] is not None and pid_is_gone(w["pid"]))]

    def silent_workers_here(self, *, within_s: float) -> list[dict[str, Any]]:
        """Workers on this host whose process still runs but whose heartbeat is older than `within_s`: alive, yet
        unable to write to the store (full disk, read-only, locked), or hung."""
        cutoff = utcnow() - timedelta(seconds=within_s)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(workers).where(
                    workers.c.heartbeat_at < cutoff, workers.c.stopped_at.is_(None), workers.c.host_key == host_key()
                )
            ).mappings()
            found = [dict(r) for r in rows]
        return [w for w in found if w["pid"] is not None and not pid_is_gone(w["pid"])]

    def recent_exits(self, *, within_s: float) -> list[dict[str, Any]]:
        """Workers that stopped with a reason recently, newest first (for /readyz and `status`)."""
        cutoff = utcnow() - timedelta(seconds=within_s)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(
                    workers.c.worker_id, workers.c.pid, workers.c.hostname, workers.c.stopped_at, workers.c.exit_reason
                )
                .where(workers.c.stopped_at >= cutoff, workers.c.exit_reason.is_not(None))
                .order_by(workers.c.stopped_at.desc())
            ).mappings()
            return [dict(r) for r in rows]

    def forget_stopped_workers(self, *, older_than_s: float) -> int:
        """Drop rows of workers stopped long ago, so the table stays as small as the fleet."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._writes.begin() as connection:
            return int(
                connection.execute(
                    workers.delete().where(
                        or_(workers.c.stopped_at < cutoff, workers.c.heartbeat_at < cutoff - timedelta(days=1))
                    )
                ).rowcount
                or 0
            )

    # -- the shared token bucket --------------------------------------------------------------------

    def take_tokens(self, sink: str, cost: float, *, capacity: float, per_second: float) -> float:
        """Take `cost` tokens from the sink's bucket; returns 0 when granted, else seconds to wait.

        One short transaction per call, with the bucket row locked (FOR UPDATE on PostgreSQL,
        BEGIN IMMEDIATE on SQLite), so every worker of the store draws from the same bucket.
        """
        with self._writes.begin() as connection:
            query = select(rate_buckets).where(rate_buckets.c.sink == sink)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            row = connection.execute(query).first()
            if row is None:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text(
                            "INSERT INTO rate_buckets (sink, tokens, updated_at) VALUES (:s, :t, :u) "
                            "ON CONFLICT (sink) DO NOTHING"
                        ),
                        {"s": sink, "t": capacity, "u": time.time()},
                    )
                else:
                    connection.execute(rate_buckets.insert().values(sink=sink, tokens=capacity, updated_at=time.time()))
                row = connection.execute(query).first()
            assert row is not None
            # Read the clock only once the row is locked, and never move the bucket's clock back:
            # otherwise two takers racing could each refill the same elapsed time.
            now = max(time.time(), row.updated_at)
            tokens = min(capacity, row.tokens + (now - row.updated_at) * per_second)
            if tokens >= cost:
                connection.execute(
                    update(rate_buckets).where(rate_buckets.c.sink == sink).values(tokens=tokens - cost, updated_at=now)
                )
                return 0.0
            connection.execute(
                update(rate_buckets).where(rate_buckets.c.sink == sink).values(tokens=tokens, updated_at=now)
            )
            return (cost - tokens) / per_second
