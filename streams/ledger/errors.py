"""What a ledger command tells a user whose database is wrong, missing or out of date."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from closedloop.streams.ledger.migrate import LedgerNotReady

__all__ = ["LedgerUnavailable", "ledger_error", "read_ledger"]

T = TypeVar("T")


class LedgerUnavailable(Exception):
    """A ledger a command cannot read; the message is the one line to show the user."""


def ledger_error(exc: BaseException) -> str | None:
    """One line for an error a user can fix (bad URL, no server, old schema); None otherwise."""
    if isinstance(exc, LedgerNotReady):
        return str(exc)
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return f"bad database URL: {exc}"
    if isinstance(exc, ModuleNotFoundError):
        return (f"the database driver is not installed ({exc.name}): "
                "pip install 'closedloop[postgres]'")
    if isinstance(exc, SQLAlchemyError):
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"database error: {detail[0] if detail else type(exc).__name__}"
    return None


def read_ledger(url: str | None, query: Callable[[Connection], T]) -> T:
    """Run a read-only ``query`` on an existing ledger (the reading commands' one path).

    Raises LedgerUnavailable with ``ledger_error``'s line for what a user can fix; any other
    error propagates.
    """
    from closedloop.streams.ledger import database_url
    from closedloop.streams.ledger.migrate import open_existing

    try:
        engine = open_existing(database_url(url))
        try:
            with engine.connect() as connection:
                return query(connection)
        finally:
            engine.dispose()
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        raise LedgerUnavailable(message) from exc
