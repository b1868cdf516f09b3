"""The daily closure (日清日结) table from the ledger: ``closedloop report daily --date D``.

One row per district: the engine's report for the day (pushed, located, under_control,
followup_overdue_open, tests_missed, positives, and v1.1 checkpoint_entries, entries_without_proof,
landing_tests_missed, sentinel_visits, sentinel_untested) and ``alerts_unresolved``, the district's
alerts raised by that day's cut-off and not resolved yet, counted now from the ledger.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime

from closedloop.streams.ledger.options import add_url

__all__ = ["add_parser", "local_day", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.ledger.formats import FORMATS

    parser.description = __doc__
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    daily = sub.add_parser("daily", help="the 日清日结 table of one local day",
                           description=__doc__)
    daily.add_argument("--date", required=True, metavar="YYYY-MM-DD",
                       help="the local day of the report, e.g. 2022-09-08")
    daily.add_argument("--district", action="append", help="only this district (repeatable)")
    daily.add_argument("--format", choices=FORMATS, default="table", help="default table")
    daily.add_argument("--policy", metavar="FILE",
                       help="TOML policy: its timezone and daily_cutoff (default the contract's)")
    add_url(daily)


def local_day(text: str) -> date:
    """``--date`` as a calendar day. Parsed here rather than by argparse, whose message for a
    bad value names a Python function instead of the format to write."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--date {text!r} is not a calendar day: write YYYY-MM-DD, "
                         "e.g. 2022-09-08") from None


def run(args: argparse.Namespace) -> int:
    from closedloop.agents.calendar import Calendar
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger
    from closedloop.streams.ledger.formats import write_rows
    from closedloop.streams.ledger.queries import REPORT_COLUMNS, daily_report

    try:
        day = local_day(args.date)
        policy = load_policy(args.policy)
    except (ValueError, PolicyError) as exc:
        print(f"closedloop report: {exc}", file=sys.stderr)
        return 2
    cal = Calendar(policy.zone, policy.daily_cutoff)
    cutoff = datetime.fromtimestamp(cal.cutoff_at(day), policy.zone)
    try:
        rows = read_ledger(args.url, lambda connection: daily_report(
            connection, day, cutoff, args.district or ()))
    except LedgerUnavailable as exc:
        print(f"closedloop report: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print(f"closedloop report: no daily report for {day} in the ledger"
              + (f" for {', '.join(args.district)}" if args.district else ""), file=sys.stderr)
        return 1
    write_rows(rows, REPORT_COLUMNS, args.format, sys.stdout, policy.zone)
    return 0
