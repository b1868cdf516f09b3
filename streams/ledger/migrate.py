"""Schema versions with Alembic, driven from Python: no alembic.ini to find or keep in step.

The migration scripts ship inside the package (``migrations/``), so ``closedloop db upgrade``
works from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, make_url

from closedloop.streams.ledger.engine import open_engine

__all__ = [
    "LedgerNotReady",
    "alembic_config",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "open_existing",
    "upgrade",
]

MIGRATIONS: Final = Path(__file__).with_name("migrations")


class LedgerNotReady(RuntimeError):
    """The database's schema is not the version this code writes."""


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that runs the packaged scripts on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(url: str, revision: str = "head") -> None:
    engine = open_engine(url)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    engine = open_engine(url)
    try:
        command.downgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Make sure ``engine``'s schema is at head before anything is written.

    An embedded SQLite ledger is upgraded on the spot (a laptop has no deploy step). A server
    database is left alone: changing a shared schema is an explicit ``closedloop db upgrade``,
    never a side effect of starting a sink.
    """
    head, current = head_revision(), current_revision(engine)
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        command.upgrade(alembic_config(engine), "head")
        return
    raise LedgerNotReady(
        f"the ledger at {engine.url.render_as_string(hide_password=True)} is at revision "
        f"{current or 'none (empty)'}, this version writes {head}: run "
        "`closedloop db upgrade --ledger URL` first"
    )


def open_existing(url: str) -> Engine:
    """An engine on a ledger that must already exist: for the commands that only read.

    SQLite would create an empty file for a mistyped path; refusing it turns a typo into a
    clear message instead of an empty listing.
    """
    from closedloop.streams.ledger import DEFAULT_URL

    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:" and (
        not Path(database).exists()
    ):
        where = " (the default: closedloop.db in the current directory)" if (
            url == DEFAULT_URL) else ""
        raise LedgerNotReady(f"no ledger at {url}{where}: fill one with `closedloop demo` or "
                             "`closedloop replay FILE --ledger`, or from Kafka with "
                             "`closedloop sink`")
    engine = open_engine(url)
    try:
        current, head = current_revision(engine), head_revision()
    except BaseException:
        engine.dispose()
        raise
    if current != head:
        engine.dispose()
        raise LedgerNotReady(
            f"the ledger at {parsed.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none (empty)'}, not {head}: run `closedloop db upgrade --ledger URL`"
        )
    return engine
