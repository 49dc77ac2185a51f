"""create orders

The demo service's first schema (release 1.0.0).  legacy_note carries free text that
release 1.2.0 stops using (0003 drops it).

Revision ID: 0001
Revises:
Create Date: 2025-01-06 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),  # bigserial
        sa.Column("customer", sa.Text, nullable=False),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("legacy_note", sa.Text, nullable=True),
    )
    op.create_index("ix_orders_customer", "orders", ["customer"])


def downgrade() -> None:
    op.drop_index("ix_orders_customer", table_name="orders")
    op.drop_table("orders")
