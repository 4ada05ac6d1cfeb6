"""An index for one account's open orders: ``orders (account_id, status)``.

The risk gate reads the open orders' exposure on every order; with only ``user_id`` indexed it
walked every order the user had ever placed, so each order cost more than the one before it
for the life of the database.

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_account_id_status", "orders", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_orders_account_id_status", table_name="orders")
