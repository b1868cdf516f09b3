"""``closedloop alerts list``: alerts from the ledger, for operators working through them.

``alerts tail`` watches the topic as alerts are raised; ``alerts list`` answers "what is
still open" from the ledger, where an alert keeps its lifecycle (raised, acknowledged,
resolved).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from closedloop.streams.ledger.options import add_url

__all__ = ["add_list_parser", "run_list"]

TABLE_COLUMNS: Final = ("due_at", "kind", "subject", "district", "state", "alert_id")


def add_list_parser(sub: Any) -> None:
    """Add ``list`` to the ``alerts`` sub-commands (``sub`` is their subparsers action)."""
    from closedloop.streams.ledger.formats import FORMATS

    parser = sub.add_parser("list", help="list alerts from the SQL ledger", description=__doc__)
    parser.add_argument("--open", action="store_true",
                        help="only alerts not resolved (raised or acknowledged)")
    parser.add_argument("--kind", action="append", help="only this kind (repeatable)")
    parser.add_argument("--district", action="append", help="only this district (repeatable)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default table")
    add_url(parser)


def run_list(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import default_policy
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger
    from closedloop.streams.ledger.formats import write_rows
    from closedloop.streams.ledger.queries import list_alerts

    try:
        rows = read_ledger(args.url, lambda connection: list_alerts(
            connection, open_only=args.open, districts=args.district or (),
            kinds=args.kind or ()))
    except LedgerUnavailable as exc:
        print(f"closedloop alerts list: {exc}", file=sys.stderr)
        return 1
    write_rows(rows, TABLE_COLUMNS, args.format, sys.stdout, default_policy().zone)
    return 0
