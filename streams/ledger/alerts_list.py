"""``closedloop alerts list``: alerts from the ledger, for operators working through them.

``alerts tail`` watches the topic as alerts are raised; ``alerts list`` answers "what is
still open" from the ledger, where an alert keeps its lifecycle (raised, acknowledged,
resolved).

The catch-up list of a testing round (查漏补测), for grid workers:
  closedloop alerts list --kind round_missed --round R --format csv
one row per person in the round's scope who was not sampled in it, by district, grid and
person (those without a grid last in their district), with ``grid`` (from the roster,
empty when the roster gives none) and ``sampled_after_close`` (the person's latest sampling
when it came after the round's close, as their state in the ledger says: caught up, or on
the way; empty: still to catch up) as columns.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from closedloop.schemas.outputs import ALERT_KINDS
from closedloop.streams.ledger.options import add_url

__all__ = ["add_list_parser", "run_list"]

TABLE_COLUMNS: Final = ("due_at", "kind", "subject", "district", "state", "alert_id")
ROUND_COLUMNS: Final = ("due_at", "kind", "subject", "district", "grid", "sampled_after_close",
                         "state", "alert_id")


def add_list_parser(sub: Any) -> None:
    """Add ``list`` to the ``alerts`` sub-commands (``sub`` is their subparsers action)."""
    from closedloop.streams.ledger.formats import FORMATS

    parser = sub.add_parser("list", help="list alerts from the SQL ledger", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open", action="store_true",
                        help="only alerts not resolved (raised or acknowledged)")
    parser.add_argument("--kind", action="append", metavar="KIND",
                        help="only this kind (repeatable): " + ", ".join(ALERT_KINDS))
    parser.add_argument("--district", action="append", help="only this district (repeatable)")
    parser.add_argument("--round", action="append", metavar="ROUND_ID",
                        help="only round_missed alerts of this testing round (repeatable), "
                        "sorted by district, grid and person: the catch-up list")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default table")
    add_url(parser)


def run_list(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import default_policy
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger
    from closedloop.streams.ledger.formats import write_rows
    from closedloop.streams.ledger.queries import last_samplings, list_alerts

    if args.round and args.kind and set(args.kind) != {"round_missed"}:
        others = ", ".join(k for k in args.kind if k != "round_missed")
        print(f"closedloop alerts list: --round lists a round's round_missed alerts, not "
              f"{others}: drop --round, or --kind", file=sys.stderr)
        return 2
    for kind in args.kind or ():
        if kind not in ALERT_KINDS:  # warned, not refused: a later contract may add kinds
            print(f"closedloop alerts list: {kind!r} is not an alert kind of contract v1.1 "
                  f"({', '.join(ALERT_KINDS)})", file=sys.stderr)
    catch_up = bool(args.round) or args.kind == ["round_missed"]

    def query(connection: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = list_alerts(connection, open_only=args.open, districts=args.district or (),
                           kinds=args.kind or (), rounds=args.round or ())
        sampled = last_samplings(connection, [r["subject"] for r in rows]) if catch_up else {}
        return rows, sampled

    try:
        rows, sampled = read_ledger(args.url, query)
    except LedgerUnavailable as exc:
        print(f"closedloop alerts list: {exc}", file=sys.stderr)
        return 1
    columns: tuple[str, ...] = TABLE_COLUMNS
    if catch_up:
        columns = ROUND_COLUMNS
        rows = [_with_grid(row, sampled.get(row["subject"])) for row in rows]
    if args.round:
        rows.sort(key=lambda r: (r["district"] or "", r["grid"] is None, r["grid"] or "",
                                 r["subject"]))
        if not rows:
            print(f"closedloop alerts list: no round_missed alert of round "
                  f"{', '.join(args.round)} in the ledger (nobody missed, or an unknown "
                  "round: see closedloop report round ROUND_ID)", file=sys.stderr)
    write_rows(rows, columns, args.format, sys.stdout, default_policy().zone)
    return 0


def _with_grid(row: dict[str, Any], last_sampled: Any) -> dict[str, Any]:
    """The row with ``grid`` (a round_missed alert's details.grid) and ``sampled_after_close``
    (``last_sampled``, when after the alert's due_at: the close) after ``district``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        out[key] = value
        if key == "district":
            out["grid"] = (row.get("details") or {}).get("grid")
            after = last_sampled is not None and last_sampled > row["due_at"]
            out["sampled_after_close"] = last_sampled if after else None
    return out
