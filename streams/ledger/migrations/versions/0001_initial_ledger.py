"""The ledger: alerts with their lifecycle, daily reports, person state, dead letters, sink marks.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Instants are ``timestamp with time zone`` (PostgreSQL); on SQLite the models' ``UtcDateTime``
stores them as UTC. Types are spelled out here, not imported from the models, so this script
keeps creating exactly this schema whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=True),
        sa.Column("tube_id", sa.String(length=128), nullable=True),
        sa.Column("district", sa.String(length=200), nullable=True),
        sa.Column("due_at", INSTANT, nullable=False),
        sa.Column("raised_at", INSTANT, nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="raised", nullable=False),
        sa.Column("acknowledged_at", INSTANT, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("resolved_at", INSTANT, nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('raised', 'acknowledged', 'resolved')", name=op.f("ck_alert_state")
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alert")),
    )
    op.create_index(op.f("ix_alert_district_state"), "alert", ["district", "state"])
    op.create_index(op.f("ix_alert_due_at"), "alert", ["due_at"])

    op.create_table(
        "daily_report",
        sa.Column("district", sa.String(length=200), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("located", sa.Integer(), nullable=False),
        sa.Column("under_control", sa.Integer(), nullable=False),
        sa.Column("followup_overdue_open", sa.Integer(), nullable=False),
        sa.Column("tests_missed", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("district", "date", name=op.f("pk_daily_report")),
    )

    op.create_table(
        "person_state",
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("district", sa.String(length=200), nullable=True),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_person_state")),
    )
    op.create_index(op.f("ix_person_state_district"), "person_state", ["district"])

    op.create_table(
        "dead_letter",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("origin", sa.String(length=400), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("received_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
        sa.UniqueConstraint("origin", name=op.f("uq_dead_letter_origin")),
    )
    op.create_index(op.f("ix_dead_letter_reason"), "dead_letter", ["reason"])

    op.create_table(
        "processed_event",
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name=op.f("pk_processed_event")),
    )


def downgrade() -> None:
    op.drop_table("processed_event")
    op.drop_index(op.f("ix_dead_letter_reason"), table_name="dead_letter")
    op.drop_table("dead_letter")
    op.drop_index(op.f("ix_person_state_district"), table_name="person_state")
    op.drop_table("person_state")
    op.drop_table("daily_report")
    op.drop_index(op.f("ix_alert_due_at"), table_name="alert")
    op.drop_index(op.f("ix_alert_district_state"), table_name="alert")
    op.drop_table("alert")
