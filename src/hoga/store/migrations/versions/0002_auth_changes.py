"""Sign-in changes outbox (``auth_changes``): disable, logout and password changes reach every
running server through the database within a poll interval (issue 12).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0003"  # chained at merge: 0001 -> 0004 -> 0006 -> 0003 -> 0002
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auth_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_changes")),
    )
    with op.batch_alter_table("auth_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_changes_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_changes_user_id"))
    op.drop_table("auth_changes")
