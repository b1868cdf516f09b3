"""The web console's accounts, sessions and sign-in attempts in the ledger (SQL only; the
rules are in ``closedloop.streams.console``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, delete, func, select, update

from closedloop.streams.ledger import models

__all__ = [
    "account",
    "accounts",
    "add_account",
    "disable_account",
    "end_session",
    "failures",
    "record_attempt",
    "session_account",
    "set_password_hash",
    "start_session",
]

_ACCOUNT: Final = models.Base.metadata.tables["console_account"]
_SESSION: Final = models.Base.metadata.tables["console_session"]
_ATTEMPT: Final = models.Base.metadata.tables["login_attempt"]


def add_account(connection: Connection, *, name: str, role: str,
                districts: Sequence[str] | None, password_hash: str, at: datetime) -> bool:
    """Add an account; False if the name is taken (nothing changed)."""
    if account(connection, name) is not None:
        return False
    connection.execute(_ACCOUNT.insert().values(
        name=name, role=role, districts=None if districts is None else sorted(districts),
        password_hash=password_hash, created_at=at, disabled_at=None))
    return True


def account(connection: Connection, name: str) -> dict[str, Any] | None:
    row = connection.execute(select(_ACCOUNT).where(_ACCOUNT.c.name == name)).mappings().first()
    return None if row is None else dict(row)


def accounts(connection: Connection) -> list[dict[str, Any]]:
    """Every account by name, with its latest successful sign-in (``last_login``)."""
    last = (select(_ATTEMPT.c.account, func.max(_ATTEMPT.c.attempted_at).label("last_login"))
            .where(_ATTEMPT.c.succeeded.is_(True)).group_by(_ATTEMPT.c.account).subquery())
    query = (select(_ACCOUNT, last.c.last_login)
             .outerjoin(last, last.c.account == _ACCOUNT.c.name).order_by(_ACCOUNT.c.name))
    rows = [dict(row) for row in connection.execute(query).mappings()]
    for row in rows:  # the subquery's max() comes back as the dialect's raw value
        row["last_login"] = models.UtcDateTime().process_result_value(
            row["last_login"], connection.dialect)
    return rows


def disable_account(connection: Connection, name: str, at: datetime) -> bool:
    """Disable an account and end its sessions; False if there is no such account."""
    done = connection.execute(update(_ACCOUNT).where(_ACCOUNT.c.name == name)
                              .values(disabled_at=func.coalesce(_ACCOUNT.c.disabled_at, at)))
    connection.execute(delete(_SESSION).where(_SESSION.c.account == name))
    return bool(done.rowcount)


def set_password_hash(connection: Connection, name: str, password_hash: str) -> bool:
    """Replace an account's password hash and end its sessions; False if there is no such
    account."""
    done = connection.execute(update(_ACCOUNT).where(_ACCOUNT.c.name == name)
                              .values(password_hash=password_hash))
    connection.execute(delete(_SESSION).where(_SESSION.c.account == name))
    return bool(done.rowcount)


def record_attempt(connection: Connection, *, account: str | None, address: str,
                   at: datetime, succeeded: bool) -> None:
    connection.execute(_ATTEMPT.insert().values(account=account, address=address,
                                                attempted_at=at, succeeded=succeeded))


def failures(connection: Connection, *, account: str | None, address: str, since: datetime
             ) -> tuple[tuple[int, datetime | None], tuple[int, datetime | None]]:
    """Failed attempts since ``since``: (count, oldest) for the account (0 when None) and for
    the address."""
    def count(*where: Any) -> tuple[int, datetime | None]:
        found = connection.execute(
            select(func.count(), func.min(_ATTEMPT.c.attempted_at))
            .where(_ATTEMPT.c.succeeded.is_(False), _ATTEMPT.c.attempted_at >= since, *where)
        ).one()
        oldest = models.UtcDateTime().process_result_value(found[1], connection.dialect)
        return int(found[0]), oldest

    by_account = count(_ATTEMPT.c.account == account) if account is not None else (0, None)
    return by_account, count(_ATTEMPT.c.address == address)


def start_session(connection: Connection, *, token_hash: str, account: str, at: datetime,
                  expires_at: datetime) -> None:
    # sessions that ended long ago go as new ones start: the table holds live ones only
    connection.execute(delete(_SESSION).where(_SESSION.c.expires_at < at))
    connection.execute(_SESSION.insert().values(token_hash=token_hash, account=account,
                                                created_at=at, expires_at=expires_at))


def session_account(connection: Connection, token_hash: str, now: datetime
                    ) -> dict[str, Any] | None:
    """The enabled account of a live session, or None."""
    query = (select(_ACCOUNT).join(_SESSION, _SESSION.c.account == _ACCOUNT.c.name)
             .where(and_(_SESSION.c.token_hash == token_hash, _SESSION.c.expires_at > now,
                         _ACCOUNT.c.disabled_at.is_(None))))
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def end_session(connection: Connection, token_hash: str) -> None:
    connection.execute(delete(_SESSION).where(_SESSION.c.token_hash == token_hash))
