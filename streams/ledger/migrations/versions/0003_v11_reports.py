"""Contract v1.1: the daily report's checkpoint and sentinel columns, and round reports.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Reports stored before v1.1 had no checkpoints or sentinel visits to count: their new columns
read 0. A round report is kept row by row (one per district), keyed by (round_id, stage,
as_of, district), so ``closedloop report round`` can show any stage of any round.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("checkpoint_entries", "entries_without_proof", "landing_tests_missed",
           "sentinel_visits", "sentinel_untested")


def upgrade() -> None:
    with op.batch_alter_table("daily_report") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "round_report",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("as_of", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("district", sa.String(200), primary_key=True),
        sa.Column("in_scope", sa.Integer(), nullable=False),
        sa.Column("sampled", sa.Integer(), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("caught_up", sa.Integer(), nullable=False),
        sa.Column("not_on_roster", sa.Integer(), nullable=False),
        sa.Column("catchup_median_hours", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("round_report")
    with op.batch_alter_table("daily_report") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
