"""Create or change the ledger's schema: ``closedloop db upgrade|downgrade|current``.

The schema is versioned with Alembic; the migration scripts ship with the package. Upgrade a
server database (PostgreSQL) before starting sinks on a new version; an embedded SQLite ledger
is upgraded on first use as well.
"""

from __future__ import annotations

import argparse
import sys

from closedloop.schemas.identifiers import redact_text
from closedloop.streams.ledger import database_url
from closedloop.streams.ledger.options import add_ledger

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser("upgrade", help="migrate the schema up (to the newest by default)")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    add_ledger(up)
    down = sub.add_parser("downgrade", help="migrate the schema down to REV (base = nothing)")
    down.add_argument("revision", metavar="REV", help="target revision, e.g. base or -1")
    add_ledger(down)
    current = sub.add_parser("current", help="print the schema's revision and the newest one")
    add_ledger(current)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from closedloop.streams.ledger import migrate
    from closedloop.streams.ledger.engine import open_engine
    from closedloop.streams.ledger.errors import ledger_error

    url = database_url(args.ledger)
    shown = redact_text(make_url(url).render_as_string(hide_password=True))
    def revision() -> str | None:
        engine = open_engine(url)
        try:
            return migrate.current_revision(engine)
        finally:
            engine.dispose()

    try:
        if args.db_command == "current":
            current = revision()
            head = migrate.head_revision()
            print(f"{shown}: revision {current or 'none (empty)'}; newest {head}")
            return 0
        if args.db_command == "upgrade":
            migrate.upgrade(url, args.revision)
        else:
            migrate.downgrade(url, args.revision)
        reached = revision()  # the revision reached, not the one asked for (-1, head)
    except Exception as exc:
        message = ledger_error(exc) or _alembic_error(exc)
        if message is None:
            raise
        print(f"closedloop db {args.db_command}: {message}", file=sys.stderr)
        return 2 if _alembic_error(exc) is not None else 1  # a bad revision is bad usage
    print(f"closedloop db {args.db_command}: {shown} is at revision "
          f"{reached or 'none (empty)'}", file=sys.stderr)
    return 0


def _alembic_error(exc: BaseException) -> str | None:
    from alembic.util import CommandError

    return str(exc) if isinstance(exc, CommandError) else None
