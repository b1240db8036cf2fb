"""Contact cache: E.164 → CRM record, shared by every worker (read-your-writes despite search lag).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_cache",
        sa.Column("sink", sa.String(64), primary_key=True),
        sa.Column("contact_key", sa.String(64), primary_key=True),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("crm_id", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contact_cache")
