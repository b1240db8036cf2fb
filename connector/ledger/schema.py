"""Tables of the ledger (SQLAlchemy Core), identical on SQLite and PostgreSQL.

The migration scripts under `migrations/versions` create these tables; this module is what the
code reads and writes through. A test checks that a freshly migrated database matches it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit column.
_Id = BigInteger().with_variant(Integer(), "sqlite")
MAX_ROW_ID = 2**63 - 1
"""The largest id a row can have on either backend: a bigger number names no row (and PostgreSQL would
refuse to compare it with `bigint out of range` instead of finding nothing)."""

# Event ids and end reasons come from the vendor, unbounded: TEXT on PostgreSQL (revision 0004).
# SQLite never enforces a VARCHAR length, so its columns keep their declared type (rebuilding
# `events` there would cascade-delete deliveries through the foreign key).
_VendorText = String(128).with_variant(Text(), "postgresql")
_ReasonText = String(64).with_variant(Text(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware, on every backend.

    SQLite has no time zone type; without this, values would come back naive and comparisons
    against `datetime.now(timezone.utc)` would raise.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DeliveryStatus(StrEnum):
    """Where a delivery (one event to one sink) stands; the worker moves it between these."""

    PENDING = "pending"
    LEASED = "leased"
    RETRY_SCHEDULED = "retry_scheduled"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    HELD = "held"
    """The mapping asked for a human review; replay releases it."""


DUE_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRY_SCHEDULED.value)
"""Deliveries a worker may claim (once due_at has passed)."""
DUE_CONDITION = "status IN (" + ", ".join(f"'{status}'" for status in DUE_STATUSES) + ")"
"""DUE_STATUSES as literal SQL: the queue index's predicate, which a query must name as is for the planner to use
that partial index (neither PostgreSQL's generic plans nor SQLite can match bound parameters against it)."""


class DeliveryOutcome(StrEnum):
    """How one delivery attempt ended (attempts.outcome, metrics' `outcome` label, the worker's log line).

    The values are stored: never rename one."""

    SUCCEEDED = "succeeded"
    RETRY = "retry"
    """A transient failure: tried again on the retry schedule."""
    RATE_LIMITED = "rate_limited"
    """The CRM's budget is spent: the whole sink waits; no attempt counted."""
    DEAD = "dead"
    """Dead-lettered: a permanent error, a mapping error, or the retry schedule ran out."""
    PAUSED = "paused"
    """Credentials rejected, or the CRM lacks a field it must not skip: the sink pauses; no attempt counted."""
    HELD = "held"
    """The mapping asked for a human review."""
    RELEASED = "released"
    """The worker stopped (or its lease was taken back) before the attempt finished."""
    LEASE_LOST = "lease_lost"
    """This worker's lease was released meanwhile: its result was not recorded."""


class ActionStatus(StrEnum):
    """One planned action's state in the journal."""

    IN_FLIGHT = "in_flight"
    """The CRM call started; if we find this after a crash the outcome is unknown: look it up first."""
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"


events = Table(
    "events",
    metadata,
    Column("event_id", _VendorText, primary_key=True),  # 2X's id, as a string (≤ defaults.MAX_EVENT_ID_CHARS)
    Column("received_at", UTCDateTime(), nullable=False),
    Column("body", LargeBinary(), nullable=False),  # raw body exactly as received
    Column("body_sha256", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),  # sha256 of the canonical JSON; decides duplicate vs conflict
    Column("content_type", String(255), nullable=True),
    Column("normalized", Text(), nullable=False),  # CallEvent as JSON
    Column("end_reason", _ReasonText, nullable=True),
    Column("contact_key", String(32), nullable=True),  # E.164 phone; orders deliveries per contact
    # Set when retention emptied the row's personal content (body, normalized, phone); the id and both hashes stay,
    # so a late retry of the same call is still a duplicate and a different body under its id still a conflict.
    Column("purged_at", UTCDateTime(), nullable=True),
    Index("ix_events_received_at", "received_at"),
    Index("ix_events_contact_key", "contact_key"),
    # The events retention has yet to purge, oldest first (migration 0011): a purge never reads the purged ones.
    Index(
        "ix_events_unpurged",
        "received_at",
        postgresql_where=text("purged_at IS NULL"),
        sqlite_where=text("purged_at IS NULL"),
    ),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("http_status", SmallInteger(), nullable=False),
    Column("code", String(64), nullable=False),
    Column("detail", Text(), nullable=False),
    Column("errors", Text(), nullable=False),  # JSON list of {path, message}
    Column("body", LargeBinary(), nullable=False),  # raw body up to max_body_bytes
    Column("body_truncated", Boolean(), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("event_id", _VendorText, nullable=True),  # set when the body named an id (e.g. an id conflict)
    Column("replayed_at", UTCDateTime(), nullable=True),
    Column("replay_result", String(255), nullable=True),
    Index("ix_quarantine_received_at", "received_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_id", _VendorText, ForeignKey("events.event_id", ondelete="CASCADE"), nullable=False),
    Column("sink", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("priority", SmallInteger(), nullable=False),  # lower is claimed first; do-not-call is 0
    Column("attempts", Integer(), nullable=False, default=0),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("contact_key", String(64), nullable=True),  # lead phone; one delivery per contact at a time
    Column("call_time", UTCDateTime(), nullable=True),
    Column("plan", Text(), nullable=True),  # the Plan JSON of the current attempt
    Column("dead_reason", Text(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    UniqueConstraint("event_id", "sink", name="uq_deliveries_event_sink"),
    Index("ix_deliveries_due", "status", "priority", "due_at"),
    Index("ix_deliveries_contact", "sink", "contact_key", "status"),
    # Each sink's queue in claim order, due rows only (migration 0010); a claim names the same literal condition.
    Index(
        "ix_deliveries_queue",
        "sink",
        "priority",
        "due_at",
        "id",
        postgresql_where=text(DUE_CONDITION),
        sqlite_where=text(DUE_CONDITION),
    ),
)

action_journal = Table(
    "action_journal",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("delivery_id", _Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("action_key", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("crm_id", String(128), nullable=True),
    Column("result", Text(), nullable=True),  # ActionResult JSON
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("delivery_id", "action_key", name="uq_journal_delivery_action"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("delivery_id", _Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer(), nullable=False),
    Column("worker", String(128), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("outcome", String(20), nullable=True),  # succeeded, retry, dead, paused, held, released
    Column("error_kind", String(32), nullable=True),
    Column("status_code", Integer(), nullable=True),
    Column("crm_code", String(128), nullable=True),
    Column("message", Text(), nullable=True),
    Index("ix_attempts_delivery", "delivery_id"),
)

sink_state = Table(
    "sink_state",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("paused", Boolean(), nullable=False),
    Column("reason", Text(), nullable=True),
    Column("paused_at", UTCDateTime(), nullable=True),
    Column("next_probe_at", UTCDateTime(), nullable=True),
    Column("blocked_until", UTCDateTime(), nullable=True),  # rate-limited: nobody calls the CRM before this
    Column("updated_at", UTCDateTime(), nullable=False),
    # The mapping file changed but does not load (FILE:LINE: problem lines); the worker keeps the previous one.
    Column("mapping_error", Text(), nullable=True),
    Column("mapping_error_at", UTCDateTime(), nullable=True),
)

field_state = Table(
    "field_state",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("contact_ref", String(160), primary_key=True),  # "<object>:<crm id>"
    Column("property", String(200), primary_key=True),
    Column("value", Text(), nullable=True),
    Column("rank", Integer(), nullable=False),
    Column("call_time", UTCDateTime(), nullable=False),
    Column("event_id", _VendorText, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("pid", Integer(), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("stopped_at", UTCDateTime(), nullable=True),
    Column("host_key", String(64), nullable=True),  # hostname + PID namespace: where `pid` means something
    Column("exit_reason", Text(), nullable=True),  # why it stopped (its own error, its supervisor, declared dead)
)

store_probe = Table(
    "store_probe",
    metadata,
    Column("name", String(255), primary_key=True),  # one row per probing process
    Column("probed_at", UTCDateTime(), nullable=False),
)

rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("tokens", Float(), nullable=False),
    Column("updated_at", Float(), nullable=False),  # epoch seconds; token-bucket arithmetic
)

contact_cache = Table(
    "contact_cache",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("contact_key", String(64), primary_key=True),  # E.164
    Column("object", String(64), nullable=False),
    Column("crm_id", String(128), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

missing_fields = Table(
    "missing_fields",
    metadata,
    # Fields a sink's CRM refused as missing or not writable (schema drift), shown as a warning until a write of
    # the field succeeds again or crm-setup finds it; names and codes only, never values.
    Column("sink", String(64), primary_key=True),
    Column("object", String(64), primary_key=True),
    Column("field", String(200), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("event_id", String(128), nullable=True),  # the latest event that lost the field
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
)
