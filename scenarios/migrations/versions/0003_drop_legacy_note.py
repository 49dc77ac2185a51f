"""drop orders.legacy_note

Release 1.2.0 no longer reads legacy_note.  The downgrade puts the column back, but the
notes themselves are gone: the schema round-trips, the data does not.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-03 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("orders", "legacy_note")


def downgrade() -> None:
    op.add_column("orders", sa.Column("legacy_note", sa.Text, nullable=True))
