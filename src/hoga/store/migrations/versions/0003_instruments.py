"""The instrument master: every listed symbol with its halt and designation flags.

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0006"  # chained at merge: 0001 -> 0004 -> 0006 -> 0003
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("market", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("security_group", sa.String(length=4), nullable=False),
        sa.Column("std_code", sa.String(length=12), nullable=False),
        sa.Column("base_price", sa.BigInteger(), nullable=False),
        sa.Column("listed_shares", sa.BigInteger(), nullable=False),
        sa.Column("nxt", sa.Boolean(), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("admin_issue", sa.Boolean(), nullable=False),
        sa.Column("warning", sa.String(length=10), nullable=False),
        sa.Column("liquidation", sa.Boolean(), nullable=False),
        sa.Column("listed_on", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_instruments")),
    )


def downgrade() -> None:
    op.drop_table("instruments")
