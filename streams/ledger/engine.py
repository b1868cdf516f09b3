"""Engines for the ledger: one place that knows what SQLite needs to be a good embedded ledger."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

__all__ = ["custom_plans", "open_engine"]


def open_engine(url: str) -> Engine:
    """An engine for ``url``; a file-backed SQLite ledger gets WAL and a busy timeout.

    WAL lets ``alerts list`` and ``report daily`` read while a sink or a replay writes, and the
    timeout makes a second writer wait for the lock instead of failing at once.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    if parsed.database and parsed.database != ":memory:":

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def custom_plans(engine: Engine) -> Engine:
    """Make PostgreSQL plan each of ``engine``'s queries for its own values.

    psycopg prepares a statement after five runs, and PostgreSQL then may switch to one
    generic plan that cannot know how rare a kind is in a district: a page of the console
    filtered by both went from ~30 ms to over a second on a ledger of a million alerts, the
    bounded count of its matches planned as a scan expected to stop early. An interactive
    reader's queries are few and their best plans depend on their values, so each is planned
    anew (a fraction of a millisecond). SQLite has no such cache; other engines are left as
    they are."""
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _plan_each(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET plan_cache_mode = force_custom_plan")
            cursor.close()
            dbapi_connection.commit()  # else the pool's rollback would undo the SET

    return engine

