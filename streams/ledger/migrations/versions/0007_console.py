"""The web console: accounts, sessions, sign-in attempts, the audit of timeline views, and
the alert indexes its pages read by.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Accounts keep a slow salted hash of the password (scrypt), never the password; sessions keep
the SHA-256 of their token, never the token. Sign-in attempts keep the account name only when
it is a valid name. The alert table gains indexes in the orders the console lists by (open
alerts newest first, per district and per kind), so a page reads only its rows on a ledger of
millions; (district, state, due_at) replaces (district, state), its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)
_INDEXES = (
    ("ix_alert_state_due_at", ["state", "due_at"]),
    ("ix_alert_district_state_due_at", ["district", "state", "due_at"]),
    ("ix_alert_kind_state_due_at", ["kind", "state", "due_at"]),
    ("ix_alert_state_district_escalation_level", ["state", "district", "escalation_level"]),
)


def upgrade() -> None:
    for name, columns in _INDEXES:
        op.create_index(name, "alert", columns)
    op.drop_index("ix_alert_district_state", table_name="alert")
    op.create_table(
        "console_account",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("districts", sa.JSON(), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("disabled_at", _WHEN, nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')",
                           name=op.f("ck_console_account_role")),
    )
    op.create_table(
        "console_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
    )
    op.create_index("ix_console_session_account", "console_session", ["account"])
    op.create_table(
        "login_attempt",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(128), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("attempted_at", _WHEN, nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_login_attempt_account_attempted_at", "login_attempt",
                    ["account", "attempted_at"])
    op.create_index("ix_login_attempt_address_attempted_at", "login_attempt",
                    ["address", "attempted_at"])
    op.create_table(
        "timeline_view",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("operator_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("viewed_at", _WHEN, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
    )
    op.create_index("ix_timeline_view_subject_viewed_at", "timeline_view",
                    ["subject", "viewed_at"])
    op.create_index("ix_timeline_view_operator_id_viewed_at", "timeline_view",
                    ["operator_id", "viewed_at"])


def downgrade() -> None:
    op.drop_table("timeline_view")
    op.drop_table("login_attempt")
    op.drop_table("console_session")
    op.drop_table("console_account")
    op.create_index("ix_alert_district_state", "alert", ["district", "state"])
    for name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name="alert")
