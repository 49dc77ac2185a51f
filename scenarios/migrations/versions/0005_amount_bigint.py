"""widen orders.amount_cents to bigint

Release 1.4.0 accepts orders above 21 million EUR.  Widening rewrites the table; the
way back would narrow the column, which fails on any amount above 2^31-1, so the
authors chose not to write a downgrade: roll forward instead.

Revision ID: 0005
Revises: 0004
Create Date: 2025-05-05 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("orders", "amount_cents", type_=sa.BigInteger, existing_type=sa.Integer,
                    existing_nullable=False)


def downgrade() -> None:
    raise NotImplementedError("0005 has no downgrade: narrowing amount_cents to integer could overflow; roll forward")
