"""Order types, time in force and venue: ``orders.type`` widened, ``orders.tif`` and
``orders.venue`` added (issue 14, sessions and order types).

Existing rows become day orders on KRX, which is what every order so far was.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"  # chained at merge: 0001 -> 0004 -> 0006 -> 0003 -> 0002 -> 0005
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("type", existing_type=sa.String(length=8), type_=sa.String(length=16))
        batch_op.add_column(
            sa.Column("tif", sa.String(length=4), nullable=False, server_default="day")
        )
        batch_op.add_column(
            sa.Column("venue", sa.String(length=4), nullable=False, server_default="KRX")
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("venue")
        batch_op.drop_column("tif")
        batch_op.alter_column("type", existing_type=sa.String(length=16), type_=sa.String(length=8))
