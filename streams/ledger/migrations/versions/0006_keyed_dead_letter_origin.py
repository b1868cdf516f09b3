"""A dead letter's origin is keyed with the ledger's own secret, never a plain hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

A file line's ``dead_letter.origin`` held ``sha256(redacted line)[:24]``: a plain hash of
personal input, which anyone holding the ledger could match against hashes of guessed lines
(a number that was not redacted was recovered from 10^4 candidates). From this revision the
digest is HMAC-SHA256 under a random secret made here, kept in ``ledger_secret``. Origins
already stored have their digest replaced by its HMAC under the same secret, so no plain
hash is left and each row keeps a distinct origin (a line delivered again after the upgrade
gets a row of its own, once). The downgrade drops the secret; origins stay keyed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "dead_letter_origin"
_DIGEST = re.compile(r"^(?P<where>(?:line \d+|topic .*)) #(?P<digest>[0-9a-p]{24})$")
_SPELL = str.maketrans("0123456789", "ghijklmnop")


def upgrade() -> None:
    table = op.create_table(
        "ledger_secret",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("secret", sa.LargeBinary(64), nullable=False),
    )
    key = secrets.token_bytes(32)
    op.bulk_insert(table, [{"name": NAME, "secret": key}])
    letters = sa.table("dead_letter", sa.column("id", sa.BigInteger),
                       sa.column("origin", sa.String(400)))
    bind = op.get_bind()
    for row in bind.execute(sa.select(letters.c.id, letters.c.origin)).all():
        match = _DIGEST.match(row.origin)
        if match is None:
            continue  # a Kafka position: topic/partition/offset, no digest
        digest = hmac.new(key, match["digest"].encode(), hashlib.sha256).hexdigest()[:24]
        # as the ledger spells digests: a run of 11 digits in letters (never a mobile)
        spelt = re.sub(r"[0-9]{11,}", lambda run: run.group().translate(_SPELL), digest)
        bind.execute(letters.update().where(letters.c.id == row.id)
                     .values(origin=f"{match['where']} #{spelt}"))


def downgrade() -> None:
    op.drop_table("ledger_secret")
