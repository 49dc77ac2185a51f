"""add orders.discount_cents (nullable)

Release 1.1.0 records discounts.  A nullable column with no default: old code keeps
working, and the downgrade removes exactly what the upgrade added.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-03 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("discount_cents", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "discount_cents")
