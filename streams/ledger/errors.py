"""What a ledger command tells a user whose database is wrong, missing or out of date."""

from __future__ import annotations

from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from closedloop.streams.ledger.migrate import LedgerNotReady

__all__ = ["ledger_error"]


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
