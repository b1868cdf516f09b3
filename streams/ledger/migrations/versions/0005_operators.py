"""Operators on the ledger: the action audit, caught-up alerts, escalation levels, replay runs
and the subject of a dead letter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

An alert's status gains ``caught_up`` (closed by the system when a round_missed person was
sampled in the catch-up window, at ``caught_up_at``). Every operator action
is a row of ``alert_action`` (applied or ignored, with the reason), each escalation level a
row of ``alert_escalation``, each ``replay --ledger`` run a row of ``replay_run`` (its final
engine clock is the ledger's clock). Alerts, actions and dead letters stored before keep
their rows: their new columns are empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.drop_constraint(op.f("ck_alert_state"), type_="check")
        batch.create_check_constraint(
            op.f("ck_alert_state"), "state IN ('raised', 'acknowledged', 'resolved', 'caught_up')")
        batch.add_column(sa.Column("caught_up_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(sa.Column("subject", sa.String(128), nullable=True))
        batch.create_index("ix_dead_letter_subject", ["subject"])
    op.create_table(
        "alert_action",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("operator_id", sa.String(128), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.UniqueConstraint("event_id", name=op.f("uq_alert_action_event_id")),
        sa.CheckConstraint("outcome IN ('applied', 'ignored')",
                           name=op.f("ck_alert_action_outcome")),
    )
    op.create_index("ix_alert_action_alert_id_acted_at", "alert_action", ["alert_id", "acted_at"])
    op.create_index("ix_alert_action_subject", "alert_action", ["subject"])
    op.create_table(
        "alert_escalation",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("level", sa.SmallInteger(), primary_key=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "replay_run",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("command", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clock", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events_read", sa.BigInteger(), nullable=False),
        sa.Column("ledger_actions", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replay_run")
    op.drop_table("alert_escalation")
    op.drop_index("ix_alert_action_subject", table_name="alert_action")
    op.drop_index("ix_alert_action_alert_id_acted_at", table_name="alert_action")
    op.drop_table("alert_action")
    with op.batch_alter_table("dead_letter") as batch:
        batch.drop_index("ix_dead_letter_subject")
        batch.drop_column("subject")
    # a caught-up alert was open before it was closed by its catch-up: raised again
    op.execute("UPDATE alert SET state = 'raised' WHERE state = 'caught_up'")
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("caught_up_at")
        batch.drop_constraint(op.f("ck_alert_state"), type_="check")
        batch.create_check_constraint(op.f("ck_alert_state"),
                                      "state IN ('raised', 'acknowledged', 'resolved')")
