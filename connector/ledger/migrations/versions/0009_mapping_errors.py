"""Broken mappings: a sink whose mapping file changed on disk but no longer loads (the worker keeps the previous
one), recorded so `/readyz`, `connector status`, the dashboard and `/metrics` show it, not only the log.

Revision ID: 0009
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place (ALTER TABLE ADD COLUMN), no table rebuild.
    op.add_column("sink_state", sa.Column("mapping_error", sa.Text(), nullable=True))
    op.add_column("sink_state", sa.Column("mapping_error_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sink_state") as batch:
        batch.drop_column("mapping_error_at")
        batch.drop_column("mapping_error")
