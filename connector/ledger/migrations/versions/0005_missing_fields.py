"""Missing fields: per sink, the CRM fields a write was refused for (schema drift), for the operator's warning.

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.ledger.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "missing_fields",
        sa.Column("sink", sa.String(64), primary_key=True),
        sa.Column("object", sa.String(64), primary_key=True),
        sa.Column("field", sa.String(200), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("missing_fields")
