"""Retention: `events.purged_at` marks an event whose personal content (raw body, normalized form, phone) was
emptied after `store.retention_days`, keeping its id and hashes for duplicate detection; `ix_events_unpurged` lists
the events not purged yet in received order, so that a purge reads only those.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_UNPURGED = sa.text("purged_at IS NULL")


def upgrade() -> None:
    # A nullable column: SQLite adds it in place (ALTER TABLE ADD COLUMN), no table rebuild.
    op.add_column("events", sa.Column("purged_at", UTCDateTime(), nullable=True))
    # What a purge reads: the events not purged yet, oldest first; the purged ones (most rows, in time) stay out.
    op.create_index("ix_events_unpurged", "events", ["received_at"], postgresql_where=_UNPURGED, sqlite_where=_UNPURGED)


def downgrade() -> None:
    op.drop_index("ix_events_unpurged", table_name="events")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops a column in place; alembic's batch mode would rebuild `events`, and dropping the old
        # table would cascade-delete every delivery through the foreign key.
        op.execute("ALTER TABLE events DROP COLUMN purged_at")
    else:
        op.drop_column("events", "purged_at")
