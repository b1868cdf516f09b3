"""The daily closure (日清日结) and testing rounds' tables, from the ledger."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from typing import Any, Final

__all__ = ["add_parser", "local_day", "run"]

DAILY_HELP: Final = """The daily closure (日清日结) table of one local day: the latest day in the
ledger, or --date D; --list shows the days there are.

One row per district, in four sections: the daily closure (pushed, located, under_control,
followup_overdue_open, tests_missed, positives, and alerts_unresolved: the district's alerts
raised by that day's cut-off and not closed yet, counted now); the gates and sentinel clinics
(checkpoint_entries, entries_without_proof, landing_tests_missed, sentinel_visits,
sentinel_untested); data entry (entries, entries_late, entry_lag_p90_minutes,
entries_rejected); supervision (findings_new, findings_open, rectifications_overdue,
rechecks_failed, repeat_offenders). Each table ends with the districts' total (no total of a
percentile). csv and json give each district's whole row.

examples:
  closedloop report daily
  closedloop report daily --list
  closedloop report daily --date 2022-09-08 --district pudong --format csv
"""

ROUND_HELP: Final = """A testing round's table (采样进展 / 查漏补测); --list shows the rounds.

One row per district with anyone in scope or sampled off the roster: in_scope (on the roster,
or in the cohort, at the close), sampled (of them, sampled while the round was open), missed
(in_scope - sampled: the catch-up list), caught_up (of the missed, sampled within the
catch-up window, as of the report), not_on_roster (sampled in the round but not on the
roster: 摸排不全面), catchup_median_hours. The table ends with the districts' total (no
median: medians do not add up).

Stages: progress (hourly while the round is open, as if it closed then), close (at its
close) and final (at the end of the catch-up window). Without --stage the latest there is:
final, else close, else the latest progress; --as-of picks one report of a stage.

examples:
  closedloop report round --list
  closedloop report round round-citywide
  closedloop report round round-citywide --stage progress --as-of 2022-09-07T10:00:00+08:00
  closedloop alerts list --kind round_missed --round round-citywide --pending --format csv
"""

_ROUND_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DAILY_SECTIONS: Final = (
    ("daily closure (日清日结)", ("pushed", "located", "under_control", "followup_overdue_open",
                               "tests_missed", "positives", "alerts_unresolved")),
    ("gates and sentinel clinics (查验关, 哨点)", ("checkpoint_entries", "entries_without_proof",
                                              "landing_tests_missed", "sentinel_visits",
                                              "sentinel_untested")),
    ("data entry (录入及时、全面、准确)", ("entries", "entries_late", "entry_lag_p90_minutes",
                                    "entries_rejected")),
    ("supervision (督导检查)", ("findings_new", "findings_open", "rectifications_overdue",
                            "rechecks_failed", "repeat_offenders")),
)
"""The table's sections: one table each, a row per district (a terminal cannot show all of
a district's twenty-odd figures in one line)."""
ROUND_TABLE: Final = ("district", "in_scope", "sampled", "missed", "caught_up",
                      "not_on_roster", "catchup_median_hours")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.app.names import STAGES
    from closedloop.streams.ledger.formats import LANGS
    from closedloop.streams.ledger.options import add_ledger

    parser.description = "The daily closure (日清日结) and testing rounds' tables, from the ledger."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    daily = sub.add_parser("daily", help="the 日清日结 table of a local day (default the latest)",
                           description=DAILY_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    daily.add_argument("--date", metavar="YYYY-MM-DD",
                       help="the local day, e.g. 2022-09-08 (default the latest in the ledger)")
    daily.add_argument("--list", action="store_true", help="list the days there are")
    daily.add_argument("--district", action="append", help="only this district (repeatable)")
    rounds = sub.add_parser(
        "round", help="a testing round's table (default its latest report)",
        description=ROUND_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rounds.add_argument("round_id", metavar="ROUND_ID", nargs="?",
                        help="the round, e.g. round-citywide")
    rounds.add_argument("--list", action="store_true", help="list the rounds there are")
    rounds.add_argument("--stage", choices=STAGES,
                        help="which report (default the latest: final, close, else progress)")
    rounds.add_argument("--as-of", metavar="T",
                        help="the report describing this instant, e.g. "
                        "2022-09-07T10:00:00+08:00 (default the latest of the stage)")
    for command in (daily, rounds):
        command.add_argument("--format", choices=("table", "csv", "json"), default="table",
                             help="table (default), csv (UTF-8, opens in Excel) or json")
        command.add_argument("--lang", choices=LANGS, default="en",
                             help="column headers: en (default) or zh (Chinese)")
        command.add_argument("--policy", metavar="FILE",
                             help="policy file: its time zone and daily cut-off")
        add_ledger(command)
    daily.set_defaults(_report=run_daily)
    rounds.set_defaults(_report=run_round)


def local_day(text: str) -> date:
    """``--date`` as a calendar day, with a message that says what to write."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--date {text!r} is not a calendar day: write YYYY-MM-DD, "
                         "e.g. 2022-09-08") from None


def run(args: argparse.Namespace) -> int:
    code: int = args._report(args)
    return code


def _instant(text: str, zone: Any) -> int:
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--as-of {text!r} is not an instant: write e.g. "
                         "2022-09-07T10:00:00+08:00") from None
    if value.tzinfo is None:
        raise ValueError(f"--as-of {text!r} has no UTC offset (write e.g. "
                         f"{value.replace(tzinfo=zone).isoformat()})")
    return int(value.timestamp())


class _Failed:
    """A read that ended in a message already said: exit ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code


def _read(command: str, url: str | None, query: Any) -> Any:
    """``query`` on the ledger; a value the ledger has never seen (exit 2), or no ledger or
    report (exit 1), is one line on stderr and a :class:`_Failed`."""
    from closedloop.streams.app.alerts import UnknownValue
    from closedloop.streams.app.reports import NoReport
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger

    try:
        return read_ledger(url, query)
    except UnknownValue as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return _Failed(2)
    except (LedgerUnavailable, NoReport) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return _Failed(1)


def run_round(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app import reports
    from closedloop.streams.app.alerts import UnknownValue, closest
    from closedloop.streams.app.caller import Caller
    from closedloop.streams.ledger import queries
    from closedloop.streams.ledger.formats import write_rows

    command = "closedloop report round"
    round_id: str | None = args.round_id
    try:
        if round_id is None and not args.list:
            raise ValueError("name a round (ROUND_ID), or --list the rounds there are")
        if round_id is not None and not _ROUND_ID.fullmatch(round_id):
            raise ValueError(f"{round_id!r} is not a round_id: 1-64 characters of letters, "
                             "digits and _ . : -")
        policy = load_policy(args.policy)
        as_of = None if args.as_of is None else _instant(args.as_of, policy.zone)
    except (ValueError, PolicyError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    zone = policy.zone
    caller = Caller.command_line()

    def query(connection: Any) -> Any:
        known = reports.rounds(connection, caller)
        if args.list:
            return known
        if round_id not in {r.round_id for r in known}:
            raise UnknownValue("round", str(round_id), closest(str(round_id),
                                                               [r.round_id for r in known]))
        return reports.round_table(connection, caller, str(round_id), stage=args.stage,
                                   as_of=as_of, zone=zone)

    found = _read(command, args.ledger, query)
    if isinstance(found, _Failed):
        return found.code
    if args.list:
        rows = [{"round_id": r.round_id, "stage": r.latest[0], "as_of": r.latest[1],
                 "reports": len(r.reports)} for r in found]
        write_rows(rows, ("round_id", "stage", "as_of", "reports"), args.format, sys.stdout,
                   zone, lang=args.lang)
        if not rows:
            print(f"{command}: no testing round in the ledger yet", file=sys.stderr)
        return 0
    table = found
    if args.format == "table":
        print(f"round {table.round_id} · {table.stage} · as of "
              f"{table.as_of.astimezone(zone).isoformat()}")
    if not table.rows:
        print(f"{command}: round {table.round_id!r} {table.stage} report: nobody in scope and "
              "nobody sampled off the roster", file=sys.stderr)
    rows = list(table.rows)
    if args.format == "table" and rows:
        rows.append({**table.total, "catchup_median_hours": None})
    write_rows(rows, ROUND_TABLE, args.format, sys.stdout, zone, fields=queries.ROUND_FIELDS,
               lang=args.lang)
    return 0


def run_daily(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app import reports
    from closedloop.streams.app.alerts import UnknownValue, closest
    from closedloop.streams.app.caller import Caller
    from closedloop.streams.ledger import queries
    from closedloop.streams.ledger.formats import write_rows

    command = "closedloop report daily"
    try:
        day = None if args.date is None else local_day(args.date)
        policy = load_policy(args.policy)
    except (ValueError, PolicyError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    caller = Caller.command_line()
    districts = tuple(args.district or ())

    def query(connection: Any) -> Any:
        if args.list:
            return reports.report_days(connection, caller)
        known = queries.report_districts(connection)
        for district in districts:
            if district not in known:
                raise UnknownValue("district", district, closest(district, known))
        return reports.daily(connection, caller, policy, day, districts)

    found = _read(command, args.ledger, query)
    if isinstance(found, _Failed):
        return found.code
    if args.list:
        rows = [{"date": d, "districts": n} for d, n in found]
        write_rows(rows, ("date", "districts"), args.format, sys.stdout, policy.zone,
                   lang=args.lang)
        if not rows:
            print(f"{command}: no daily report in the ledger yet", file=sys.stderr)
        return 0
    table = found
    if args.format == "table":
        print(f"日清日结 {table.day} · cut-off {table.cutoff.isoformat()}")
        for title, columns in DAILY_SECTIONS:
            print(f"\n{title}:")
            write_rows([*table.rows, table.total], ("district", *columns), "table",
                       sys.stdout, policy.zone, lang=args.lang)
        return 0
    fields = ("district", "date", *reports.DAILY_COUNTS)
    write_rows(table.rows, fields, args.format, sys.stdout, policy.zone, fields=fields,
               lang=args.lang)
    return 0
