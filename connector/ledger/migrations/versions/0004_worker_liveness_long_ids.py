"""Worker liveness (host key, exit reason), a store write probe, and unbounded vendor strings.

Event ids and end reasons come from 2X without a documented length: on PostgreSQL their columns
become TEXT (varchar → text needs no table rewrite). SQLite never enforces VARCHAR lengths, so
there the columns are left as they are (rebuilding `events` would cascade-delete deliveries).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_WIDENED = [
    ("events", "event_id", 128),
    ("events", "end_reason", 64),
    ("deliveries", "event_id", 128),
    ("quarantine", "event_id", 128),
    ("field_state", "event_id", 128),
]


def upgrade() -> None:
    op.add_column("workers", sa.Column("host_key", sa.String(64), nullable=True))
    op.add_column("workers", sa.Column("exit_reason", sa.Text(), nullable=True))
    op.create_table(
        "store_probe",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("probed_at", UTCDateTime(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in _WIDENED:
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in _WIDENED:
            op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
    op.drop_table("store_probe")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("exit_reason")
        batch.drop_column("host_key")
