r"""List alerts from the ledger, with the filters operators work by.

Without filters: every alert, oldest due first, with its status (raised, acknowledged,
resolved, caught_up), escalation level (1 as raised, 2 district command, 3 city command) and
the latest action and who took it; the table ends with how many there are by status.
A filter value the ledger has never seen (a district spelled otherwise, a kind misspelt) is
refused with the values it knows, closest first: never an empty list.

The catch-up list of a testing round (查漏补测), for grid workers:
  closedloop alerts list --kind round_missed --round R --pending --format csv
one row per person of the round still to be sampled (--pending: neither caught up nor
resolved), by district and grid (persons without a grid last). A person sampled within the
catch-up window is closed by the system (status caught_up, with the instant). --format xlsx
writes one sheet per grid; --lang zh writes Chinese column headers.

examples:
  closedloop alerts list --open --sort severity
  closedloop alerts list --district pudong --level 3
  closedloop alerts list --kind positive --from 2022-09-07 --to 2022-09-08
  closedloop alerts list --kind round_missed --round round-citywide --pending \
      --format xlsx -o catchup.xlsx
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from typing import IO, Any, Final

from closedloop.streams.app.names import STATES
from closedloop.streams.cli.arguments import positive

__all__ = ["add_list_parser", "run_list"]

TABLE_COLUMNS: Final = ("due_at", "kind", "subject", "district", "state", "level",
                        "last_action", "last_by", "alert_id")


def add_list_parser(sub: Any) -> None:
    """Add ``list`` to the ``alerts`` sub-commands (``sub`` is their subparsers action)."""
    from closedloop.streams.app.names import SORTS
    from closedloop.streams.ledger.formats import FORMATS, LANGS
    from closedloop.streams.ledger.options import add_ledger

    parser = sub.add_parser("list", help="list alerts from the ledger", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open", action="store_true",
                        help="only alerts still to handle (raised or acknowledged)")
    parser.add_argument("--status", action="append", choices=STATES, metavar="STATUS",
                        help="only this status (repeatable): " + ", ".join(STATES))
    parser.add_argument("--kind", action="append", metavar="KIND",
                        help="only this kind (repeatable), e.g. positive, round_missed")
    parser.add_argument("--district", action="append", help="only this district (repeatable)")
    parser.add_argument("--round", action="append", metavar="ROUND_ID",
                        help="only round_missed alerts of this testing round (repeatable), "
                        "by district and grid: the catch-up list")
    parser.add_argument("--pending", action="store_true",
                        help="the catch-up list's persons still to be sampled (round_missed "
                        "alerts neither caught up nor resolved)")
    parser.add_argument("--level", action="append", type=int, choices=(1, 2, 3),
                        metavar="LEVEL", help="only this escalation level (repeatable): 1 not "
                        "escalated, 2 district command, 3 city command")
    parser.add_argument("--from", dest="day_from", metavar="YYYY-MM-DD",
                        help="only alerts due on or after this local day")
    parser.add_argument("--to", dest="day_to", metavar="YYYY-MM-DD",
                        help="only alerts due on or before this local day")
    parser.add_argument("--sort", choices=SORTS, default="due",
                        help="due (oldest due first, the default), newest, or severity "
                        "(positives first, then by level)")
    parser.add_argument("--limit", type=positive, metavar="N", help="at most N alerts")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default), csv (UTF-8, opens in Excel), json, or xlsx")
    parser.add_argument("--lang", choices=LANGS, default="en",
                        help="column headers: en (default) or zh (Chinese)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE instead of the terminal (needed for xlsx there)")
    parser.add_argument("--policy", metavar="FILE",
                        help="policy file: its time zone, for days and instants")
    add_ledger(parser)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a calendar day: write YYYY-MM-DD, "
                         "e.g. 2022-09-08") from None


def run_list(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app import alerts, catchup
    from closedloop.streams.app.caller import Caller
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger

    command = "closedloop alerts list"
    kinds = tuple(args.kind or ())
    if args.round and kinds and set(kinds) != {"round_missed"}:
        others = ", ".join(k for k in kinds if k != "round_missed")
        print(f"{command}: --round lists a round's round_missed alerts, not {others}: drop "
              "--round, or --kind", file=sys.stderr)
        return 2
    if args.pending and not args.round:
        print(f"{command}: --pending goes with --round R (the round's catch-up list)",
              file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.policy)
        zone = policy.zone
        due_from = due_to = None
        if args.day_from:
            due_from = datetime.combine(_day(args.day_from, "--from"), datetime.min.time(),
                                        zone)
        if args.day_to:
            due_to = datetime.combine(_day(args.day_to, "--to") + timedelta(days=1),
                                      datetime.min.time(), zone)
    except (ValueError, PolicyError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    if args.format == "xlsx" and args.output is None and sys.stdout.isatty():
        print(f"{command}: --format xlsx writes a spreadsheet: add -o FILE", file=sys.stderr)
        return 2
    states = tuple(args.status or ())
    if args.open or args.pending:
        states = tuple(s for s in (states or alerts.OPEN) if s in alerts.OPEN)
        if not states:
            print(f"{command}: --status {' '.join(args.status)} is closed, not open: drop "
                  "--open (or --pending)", file=sys.stderr)
            return 2
    wanted = alerts.AlertFilter(
        kinds=kinds, districts=tuple(args.district or ()), states=states,
        levels=tuple(args.level or ()), rounds=tuple(args.round or ()), due_from=due_from,
        due_to=due_to)
    caller = Caller.command_line()
    catch_up = bool(args.round)

    def query(connection: Any) -> tuple[list[Any], int, dict[str | None, int]]:
        alerts.check_filters(connection, caller, wanted)
        counts = alerts.count_alerts(connection, caller, wanted, by="state")
        if catch_up:
            grids = catchup.catchup_list(connection, caller, wanted.rounds,
                                         pending=args.pending, districts=wanted.districts)
            return grids, sum(len(g.rows) for g in grids), counts
        page = alerts.list_alerts(connection, caller, wanted, sort=args.sort,
                                  limit=args.limit)
        return page.rows, page.total, counts

    try:
        found, total, counts = read_ledger(args.ledger, query)
    except alerts.UnknownValue as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except LedgerUnavailable as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    if catch_up:
        sheets = _first(catchup.sheets(found), args.limit)
        rows = [row for _, grid_rows in sheets for row in grid_rows]
        columns: tuple[str, ...] = catchup.COLUMNS
    else:
        rows, sheets, columns = found, [("alerts", found)], TABLE_COLUMNS
    _emit(args, rows, sheets, columns, zone)
    shown = f"{len(rows):,} of {total:,}" if len(rows) < total else f"{total:,}"
    by_state = ", ".join(f"{state} {counts[state]:,}" for state in STATES
                         if counts.get(state))
    noun = "person" if catch_up else "alert"
    line = f"{shown} {noun}{'s' if total != 1 else ''}" + (f" ({by_state})" if by_state
                                                            and not catch_up else "")
    if catch_up and not rows:
        line += (" still to be sampled: everyone was caught up" if args.pending
                 else ": nobody missed the round")
    print(line, file=sys.stdout if args.format == "table" and args.output is None
          else sys.stderr)
    return 0


def _first(sheets: list[tuple[str, list[dict[str, Any]]]], limit: int | None
           ) -> list[tuple[str, list[dict[str, Any]]]]:
    """The sheets holding the first ``limit`` rows (all of them without a limit): the
    workbook lists the same persons as a CSV of the same command."""
    if limit is None:
        return sheets
    kept: list[tuple[str, list[dict[str, Any]]]] = []
    for name, rows in sheets:
        if limit <= 0:
            break
        kept.append((name, rows[:limit]))
        limit -= len(rows)
    return kept


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]],
          sheets: list[tuple[str, list[dict[str, Any]]]], columns: tuple[str, ...],
          zone: Any) -> None:
    from closedloop.streams.ledger.formats import write_csv, write_rows, write_xlsx

    if args.format in ("csv", "xlsx"):
        with _binary(args.output) as out:
            if args.format == "csv":
                write_csv(rows, columns, out, zone, fields=columns, lang=args.lang)
            else:
                write_xlsx(sheets, columns, out, zone, lang=args.lang)
        return
    if args.output is not None:
        with open(args.output, "w", encoding="utf-8") as text:
            write_rows(rows, columns, args.format, text, zone, lang=args.lang)
        return
    write_rows(rows, columns, args.format, sys.stdout, zone, lang=args.lang)


class _binary:
    """The output file, or standard output's bytes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.path is None:
            sys.stdout.flush()
            return sys.stdout.buffer
        self.handle = open(self.path, "wb")
        return self.handle

    def __exit__(self, *_: object) -> None:
        if self.handle is not None:
            self.handle.close()
        else:
            sys.stdout.buffer.flush()
