"""add orders.currency, backfill 'EUR', make it NOT NULL

Release 1.3.0 is multi-currency.  Done in one step (add, backfill, NOT NULL) rather
than expand/contract, so writers of the previous release, which do not set currency,
fail as soon as this runs.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-07 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("currency", sa.Text, nullable=True))
    op.execute("UPDATE orders SET currency = 'EUR' WHERE currency IS NULL")
    op.alter_column("orders", "currency", nullable=False)


def downgrade() -> None:
    op.drop_column("orders", "currency")
