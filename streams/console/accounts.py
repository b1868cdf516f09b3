"""Console accounts: adding and disabling them, signing in (rate-limited) and the session a
browser holds, each turned into the application layer's :class:`Caller`.

An account's name is its operator id in the audit (so it follows the operator id's rules:
letters, digits and ``_ . : -``, never a phone number or resident ID); its role is viewer
(reads), operator (also acts) or admin (also manages accounts); its districts, if any, are
all it sees and acts on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine

from closedloop.streams.app.caller import ROLES, Caller
from closedloop.streams.console import security
from closedloop.streams.ledger import accounts as ledger

__all__ = [
    "SESSION_HOURS",
    "AccountError",
    "SignInRefused",
    "add",
    "caller_of",
    "demo_account",
    "disable",
    "listing",
    "sign_in",
    "sign_out",
    "signed_in",
]

DEMO: Final = "demo"
SESSION_HOURS: Final = 12
"""A session lasts a shift: signing in again after 12 hours, whatever the activity."""


class AccountError(ValueError):
    """An account that cannot be added or changed; the message is one line for the user."""


class SignInRefused(Exception):
    """A sign-in refused: a wrong name or password (``until`` None), or too many failures
    (``until``: when the next try is allowed)."""

    def __init__(self, until: datetime | None = None) -> None:
        super().__init__("too many failed sign-ins" if until else "wrong name or password")
        self.until = until


def caller_of(row: dict[str, Any]) -> Caller:
    """The application layer's caller for an account row."""
    districts = row["districts"]
    return Caller(row["name"], row["role"],
                  None if districts is None else frozenset(districts))


def check_name(name: str) -> str:
    """``name`` if it can be an account (an operator id), else AccountError."""
    try:
        Caller(name, "viewer")
    except ValueError as exc:
        raise AccountError(f"an account name is an operator id: {exc}") from None
    return name


def add(connection: Connection, name: str, role: str, password: str,
        districts: Sequence[str] | None = None, *, now: datetime | None = None) -> None:
    """Add an account (AccountError if the name, role, districts or password will not do,
    or the name is taken)."""
    check_name(name)
    if role not in ROLES:
        raise AccountError(f"a role is one of {', '.join(ROLES)}")
    if districts is not None:
        districts = sorted({d.strip() for d in districts if d.strip()})
        if not districts:
            raise AccountError("--districts names no district")
    if len(password) < security.MIN_PASSWORD:
        raise AccountError(f"a password has at least {security.MIN_PASSWORD} characters")
    if not ledger.add_account(connection, name=name, role=role, districts=districts,
                              password_hash=security.hash_password(password),
                              at=now or datetime.now(UTC)):
        raise AccountError(f"there is already an account {name!r}")


def demo_account(engine: Engine) -> tuple[str, str] | None:
    """An operator account ``demo`` of the whole city with a new random password, for the
    demo's embedded ledger: (name, password) to print, or None for a server database (an
    account with a password shown on a terminal has no place in a shared ledger: there,
    ``closedloop console user add``). Run again, it gives the account a new password."""
    if engine.dialect.name != "sqlite":
        return None
    import secrets

    password = secrets.token_urlsafe(12)
    with engine.begin() as connection:
        if ledger.account(connection, DEMO) is None:
            add(connection, DEMO, "operator", password)
        else:
            ledger.set_password_hash(connection, DEMO, security.hash_password(password))
    return DEMO, password


def disable(connection: Connection, name: str, *, now: datetime | None = None) -> None:
    """Disable an account and end its sessions at once."""
    if not ledger.disable_account(connection, name, now or datetime.now(UTC)):
        raise AccountError(f"there is no account {name!r}")


def listing(connection: Connection) -> list[dict[str, Any]]:
    """Every account (name, role, districts, created_at, disabled_at, last_login); never a
    password hash."""
    return [{key: value for key, value in row.items() if key != "password_hash"}
            for row in ledger.accounts(connection)]


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # for the browser's cookie only: the ledger keeps its hash
    caller: Caller
    expires_at: datetime


def sign_in(engine: Engine, name: str, password: str, address: str, *,
            now: datetime | None = None) -> Session:
    """Check a sign-in and start a session; SignInRefused if it fails or is rate-limited.

    Failures are counted per account and per client address over
    :data:`security.FAILURE_WINDOW`; past the limits the password is not even checked. A
    name that is no valid account name is recorded without it (it may be a mistyped phone
    number)."""
    now = now or datetime.now(UTC)
    try:
        tried: str | None = check_name(name)
    except AccountError:
        tried = None
    with engine.begin() as connection:
        by_account, by_address = ledger.failures(
            connection, account=tried, address=address, since=now - security.FAILURE_WINDOW)
        until = security.locked_until(security.Failures(*by_account),
                                      security.Failures(*by_address))
        if until is not None:
            raise SignInRefused(until)
        row = ledger.account(connection, tried) if tried is not None else None
        stored = row["password_hash"] if row is not None else security.DUMMY_HASH
        ok = (security.verify_password(password, stored) and row is not None
              and row["disabled_at"] is None)
        ledger.record_attempt(connection, account=tried, address=address, at=now,
                              succeeded=ok)
        if not ok or row is None:
            failed = True
        else:
            failed = False
            token = security.new_token()
            expires = now + timedelta(hours=SESSION_HOURS)
            ledger.start_session(connection, token_hash=security.token_hash(token),
                                 account=row["name"], at=now, expires_at=expires)
    if failed or row is None:
        raise SignInRefused()
    return Session(token, caller_of(row), expires)


def signed_in(connection: Connection, token: str, *, now: datetime | None = None
              ) -> Caller | None:
    """The caller of a live session of an enabled account, or None."""
    row = ledger.session_account(connection, security.token_hash(token),
                                 now or datetime.now(UTC))
    return None if row is None else caller_of(row)


def sign_out(connection: Connection, token: str) -> None:
    ledger.end_session(connection, security.token_hash(token))
