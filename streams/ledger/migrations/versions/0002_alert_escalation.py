"""Alerts remember how far they escalated: escalation_level (2, 3) and escalated_at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

An escalated alert is its own record on the escalations topic (the alerts topic keeps the
contract's nine kinds); in the ledger it is a property of the alert it escalates, so that
``alerts list`` shows what went up to district or city command without a second table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.add_column(sa.Column("escalation_level", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("escalated_at")
        batch.drop_column("escalation_level")
