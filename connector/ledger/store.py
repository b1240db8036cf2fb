"""The ledger: the durable record of every webhook, accepted or quarantined, and of its deliveries.

Each public method is one transaction. `record_event` is the receiver's commit point: it returns
only after the event and its deliveries are committed, so a 2xx always means "stored".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from connector.config import StoreSettings
from connector.errors import StoreError
from connector.hints import command
from connector.ledger import migrate
from connector.ledger._clock import utcnow
from connector.ledger._errors import guard_public_methods, translating
from connector.ledger.bulk import BulkStore
from connector.ledger.deliveries import DeliveryStore
from connector.ledger.engine import make_engine, writer
from connector.ledger.event_writer import EventWriter
from connector.ledger.migrate import Upgrade
from connector.ledger.retention import RetentionStore
from connector.ledger.schema import MAX_ROW_ID, DeliveryStatus, deliveries, events, quarantine, store_probe
from connector.ledger.sinkstate import SinkStateStore

if TYPE_CHECKING:
    from connector.payload import CallEvent

_EVENT_COLUMNS = (
    "event_id",
    "received_at",
    "body",
    "body_sha256",
    "content_hash",
    "content_type",
    "normalized",
    "end_reason",
    "contact_key",
)
_DELIVERY_COLUMNS = (
    "contact_key",
    "call_time",
    "event_id",
    "sink",
    "status",
    "priority",
    "attempts",
    "due_at",
    "created_at",
    "updated_at",
)

DNC_PRIORITY = 0
"""Do-not-call deliveries are claimed first: honouring them is a legal obligation."""
DEFAULT_PRIORITY = 10


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class IngestResult:
    status: IngestStatus
    event_id: str
    quarantine_id: int | None = None
    """For a conflict: where the differing body was kept."""


@dataclass(frozen=True)
class RejectedBody:
    """A body the receiver refused, with why; becomes one quarantine row."""

    body: bytes
    content_type: str | None
    http_status: int
    code: str
    detail: str
    errors: list[dict[str, str]]
    truncated: bool = False
    event_id: str | None = None


@guard_public_methods
class Ledger:
    """Durable store of events, deliveries and quarantined bodies (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writes = writer(engine)
        self.deliveries = DeliveryStore(engine, self._writes)
        """Claims, leases, the action journal, attempts, requeueing."""
        self.sinks = SinkStateStore(engine, self._writes)
        """Paused/blocked sinks, written contact fields, worker heartbeats, rate buckets."""
        self._events = EventWriter(engine, _EVENT_COLUMNS, _DELIVERY_COLUMNS)
        """The receiver's commit point, with the least work per event (see its module)."""
        self.bulk = BulkStore(engine, self._writes)
        """Many deliveries' journal, attempts, plans and fields at once (the batch runner)."""
        self.retention = RetentionStore(engine, self._writes)
        """Purging personal data past `store.retention_days`."""

    @classmethod
    def open(cls, store: StoreSettings, *, migrate_schema: bool = True) -> Ledger:
        """Connect to the configured store and, by default, bring its schema up to date."""
        ledger = cls(make_engine(store))
        if migrate_schema:
            ledger.migrate()
        return ledger

    # -- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> Upgrade:
        """Bring the schema to the newest revision; the revisions before and after (for `connector migrate`)."""
        # OSError too: the SQLite lock file beside the store
        with translating("migrate", unavailable="cannot open the store and bring its schema up to date"):
            return migrate.upgrade(self.engine)

    def ping(self) -> None:
        """Raise StoreError unless the store answers and its schema is current."""
        with translating("ping", unavailable="store unreachable"):
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if migrate.current_revision(self.engine) != migrate.head_revision():
                raise StoreError(f"the store's schema is not at the current revision; run `{command('migrate')}`")

    def probe(self, name: str) -> None:
        """Raise StoreError unless the store takes a real write (a full disk, a read-only server or
        a held lock fail here, where `SELECT 1` would pass) and its schema is current."""
        try:
            with translating("probe", unavailable="store cannot take a write"):
                if migrate.current_revision(self.engine) != migrate.head_revision():
                    raise StoreError(f"the store's schema is not at the current revision; run `{command('migrate')}`")
                now = utcnow()
                with self._writes.connect() as connection, _patient_transaction(connection, PROBE_WAIT_MS):
                    changed = connection.execute(
                        store_probe.update().where(store_probe.c.name == name).values(probed_at=now)
                    ).rowcount
                    if not changed:
                        connection.execute(store_probe.insert().values(name=name, probed_at=now))
        except IntegrityError:
            return  # another process inserted the same name meanwhile: the store took a write

    def dispose(self) -> None:
        self._events.close()
        self.retention.close()
        self.engine.dispose()

    # -- receiving ---------------------------------------------------------------------------

    def record_event(
        self,
        event: CallEvent,
        *,
        body: bytes,
        content_type: str | None,
        content_hash: str,
        sinks: list[str],
        keep_conflicting_body: bool = True,
        do_not_call: bool | None = None,
    ) -> IngestResult:
        """Store an accepted event and one pending delivery per sink, or tell why it is not new.

        Races are settled by the primary key: of two concurrent posts with the same id exactly
        one insert commits; the other finds that row and answers duplicate or conflict.
        A conflicting body is quarantined unless `keep_conflicting_body` is False (a replay of a
        body that is already in quarantine). `do_not_call` (from the sinks' mappings) puts the
        deliveries first in line; when not given, the end_reason decides.
        """
        now = utcnow()
        if do_not_call is None:
            do_not_call = event.call.end_reason.value == "do_not_call"
        priority = DNC_PRIORITY if do_not_call else DEFAULT_PRIORITY
        row = _new_event(event, body, content_hash, _header(content_type), now)
        delivery_rows = [_new_delivery(event.id, sink, priority, now, event.contact_key) for sink in sinks]
        try:
            self._events.write(row, delivery_rows)  # one transaction, committed before we return
            return IngestResult(IngestStatus.ACCEPTED, event.id)
        except IntegrityError:
            pass  # the id exists: decide duplicate vs conflict below
        return self._settle_existing(event.id, body, content_type, content_hash, keep_conflicting_body)

    def _settle_existing(
        self, event_id: str, body: bytes, content_type: str | None, content_hash: str, keep_body: bool
    ) -> IngestResult:
        with translating("read the stored event"), self.engine.connect() as connection:
            existing = connection.execute(
                select(events.c.content_hash).where(events.c.event_id == event_id)
            ).scalar_one()
        if existing == content_hash:
            return IngestResult(IngestStatus.DUPLICATE, event_id)
        if not keep_body:
            return IngestResult(IngestStatus.CONFLICT, event_id)
        quarantine_id = self.quarantine(
            RejectedBody(
                body=body,
                content_type=content_type,
                http_status=409,
                code="id_conflict",
                detail="an event with this id was already accepted with a different body; this body is kept here",
                errors=[{"path": "id", "message": "already used by a different body"}],
                event_id=event_id,
            )
        )
        return IngestResult(IngestStatus.CONFLICT, event_id, quarantine_id)

    def quarantine(self, rejected: RejectedBody) -> int:
        """Keep a refused body, with why, so it can be inspected and replayed; returns its id."""
        row = {
            "received_at": utcnow(),
            "http_status": rejected.http_status,
            "code": rejected.code,
            "detail": rejected.detail,
            "errors": json.dumps(rejected.errors),
            "body": rejected.body,
            "body_truncated": rejected.truncated,
            "body_sha256": sha256_hex(rejected.body),
            "content_type": _header(rejected.content_type),
            "event_id": rejected.event_id,
        }
        with translating("quarantine the body"), self._writes.begin() as connection:
            result = connection.execute(quarantine.insert().values(row))
            return int(result.inserted_primary_key[0])

    # -- reading -------------------------------------------------------------------------------

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The stored event row (raw body, normalized JSON, hashes, times) or None."""
        with self._reading() as connection:
            row = connection.execute(select(events).where(events.c.event_id == event_id)).mappings().first()
        return dict(row) if row else None

    def deliveries_for(self, event_id: str) -> list[dict[str, Any]]:
        with self._reading() as connection:
            rows = connection.execute(
                select(deliveries).where(deliveries.c.event_id == event_id).order_by(deliveries.c.sink)
            ).mappings()
            return [dict(r) for r in rows]

    def count_events(self) -> int:
        with self._reading() as connection:
            return int(connection.execute(select(func.count()).select_from(events)).scalar_one())

    def list_quarantine(self, *, limit: int = 50, include_replayed: bool = False) -> list[dict[str, Any]]:
        """Newest first; without the bodies, which can be large."""
        columns = [c for c in quarantine.c if c.name != "body"]
        query = select(*columns).order_by(quarantine.c.id.desc()).limit(limit)
        if not include_replayed:
            query = query.where(quarantine.c.replayed_at.is_(None))
        with self._reading() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def get_quarantined(self, quarantine_id: int) -> dict[str, Any] | None:
        if not 0 < quarantine_id <= MAX_ROW_ID:
            return None
        with self._reading() as connection:
            row = connection.execute(select(quarantine).where(quarantine.c.id == quarantine_id)).mappings().first()
        return dict(row) if row else None

    def note_replay(self, quarantine_id: int, result: str, *, settled: bool) -> None:
        """Record a replay's result; `settled` marks the body as done (it stays, never deleted)."""
        values: dict[str, Any] = {"replay_result": result[:255]}
        if settled:
            values["replayed_at"] = utcnow()
        with self._writes.begin() as connection:
            connection.execute(quarantine.update().where(quarantine.c.id == quarantine_id).values(values))

    def _reading(self) -> Any:
        return self.engine.connect()  # errors are translated by guard_public_methods


PROBE_WAIT_MS = 1000
"""How long the readiness probe waits for the write lock (SQLite) or a statement (PostgreSQL): a load balancer's
probe times out in a few seconds, and a store locked for longer is not ready anyway. Webhooks keep the full
`sqlite_busy_timeout_ms`: they may wait out a long checkpoint or another writer."""


@contextlib.contextmanager
def _patient_transaction(connection: Connection, wait_ms: int) -> Iterator[None]:
    """A transaction on `connection` that waits at most `wait_ms` for a lock or a statement, where the store's own
    settings wait longer: SQLite's busy timeout lowered before BEGIN IMMEDIATE (which is what waits) and restored
    afterwards; PostgreSQL's statement_timeout set for this transaction only."""
    if connection.dialect.name != "sqlite":
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(wait_ms)}")
            yield
        return
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    before = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
    dbapi.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        with connection.begin():
            yield
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {int(before)}")


def _header(value: str | None) -> str | None:
    """A header value as the column can hold it on every backend (255 characters, no NUL)."""
    return value.replace("\x00", "")[:255] if value is not None else None


def _new_event(
    event: CallEvent, body: bytes, content_hash: str, content_type: str | None, now: datetime
) -> dict[str, Any]:
    """The `events` row of an accepted event (the benchmarks insert backlogs with it too)."""
    return {
        "event_id": event.id,
        "received_at": now,
        "body": body,
        "body_sha256": sha256_hex(body),
        "content_hash": content_hash,
        "content_type": content_type,
        "normalized": event.model_dump_json(),
        "end_reason": event.call.end_reason.value,
        "contact_key": event.contact_key,
    }


def _new_delivery(event_id: str, sink: str, priority: int, now: datetime, contact_key: str | None) -> dict[str, Any]:
    return {
        "contact_key": contact_key,
        "call_time": now,
        "event_id": event_id,
        "sink": sink,
        "status": DeliveryStatus.PENDING.value,
        "priority": priority,
        "attempts": 0,
        "due_at": now,
        "created_at": now,
        "updated_at": now,
    }
