"""Delivery engine: action journal, attempts, sink state, field precedence, workers, rate buckets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("contact_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("call_time", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("plan", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dead_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("finished_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_deliveries_contact", ["sink", "contact_key", "status"])
    op.execute(
        "UPDATE deliveries SET contact_key = (SELECT e.contact_key FROM events e WHERE e.event_id = deliveries.event_id),"
        " call_time = (SELECT e.received_at FROM events e WHERE e.event_id = deliveries.event_id)"
    )
    op.create_table(
        "action_journal",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", _Id, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("action_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("crm_id", sa.String(128), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("delivery_id", "action_key", name="uq_journal_delivery_action"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", _Id, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("crm_code", sa.String(128), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_index("ix_attempts_delivery", "attempts", ["delivery_id"])
    op.create_table(
        "sink_state",
        sa.Column("sink", sa.String(64), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("next_probe_at", UTCDateTime(), nullable=True),
        sa.Column("blocked_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "field_state",
        sa.Column("sink", sa.String(64), primary_key=True),
        sa.Column("contact_ref", sa.String(160), primary_key=True),
        sa.Column("property", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("call_time", UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
    )
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("sink", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    for table in ("rate_buckets", "workers", "field_state", "sink_state", "attempts", "action_journal"):
        op.drop_table(table)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_contact")
        for column in ("finished_at", "dead_reason", "plan", "call_time", "contact_key"):
            batch.drop_column(column)
