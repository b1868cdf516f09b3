"""Contract v1.2 supervision: each unit's findings, their rectifications and rechecks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

One row per finding (unit_id, finding_id), as the engine's latest ``unit-status`` of its unit
had it: where and what was found, when, whether a passed recheck closed it, and its
rectifications and rechecks in event time (``steps``). The board counts open findings by
district and severity from an index alone; a unit's timeline reads its rows by the key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "finding",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("finding_id", sa.String(64), primary_key=True),
        sa.Column("unit_kind", sa.String(16), nullable=False),
        sa.Column("district", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("found_at", _WHEN, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("closed_at", _WHEN, nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.CheckConstraint("state IN ('open', 'closed')", name=op.f("ck_finding_state")),
    )
    op.create_index("ix_finding_state_district_severity", "finding",
                    ["state", "district", "severity"])


def downgrade() -> None:
    op.drop_index("ix_finding_state_district_severity", table_name="finding")
    op.drop_table("finding")
