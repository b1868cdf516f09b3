"""Contract v1.2: the daily report's data-entry and supervision columns, and assignments.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12

Reports stored before v1.2 counted no entries or findings: their new count columns read 0
and ``entry_lag_p90_minutes`` (no lag known) null. An alert's assignment (``action`` =
``assign``) is kept beside its state: who holds it, since when, and who handed it over.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("entries", "entries_late", "entry_lag_p90_minutes", "entries_rejected",
           "findings_new", "findings_open", "rectifications_overdue", "rechecks_failed",
           "repeat_offenders")
LAG = "entry_lag_p90_minutes"  # minutes, or null when no lag was known: not a count
ASSIGNMENT = (("assignee", sa.String(128)), ("assigned_at", sa.DateTime(timezone=True)),
              ("assigned_by", sa.String(128)))


def upgrade() -> None:
    with op.batch_alter_table("daily_report") as batch:
        for name in COLUMNS:
            batch.add_column(
                sa.Column(name, sa.Float(), nullable=True) if name == LAG
                else sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("alert") as batch:
        for name, kind in ASSIGNMENT:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        for name, _ in reversed(ASSIGNMENT):
            batch.drop_column(name)
    with op.batch_alter_table("daily_report") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
