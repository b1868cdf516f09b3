"""Reports from the ledger: ``closedloop report daily`` and ``closedloop report round``."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, datetime
from typing import Any, Final

from closedloop.streams.ledger.options import add_url

__all__ = ["add_parser", "local_day", "run"]

DAILY_HELP: Final = """The daily closure (日清日结) table: ``closedloop report daily --date D``.

One row per district: the engine's report for the day (pushed, located, under_control,
followup_overdue_open, tests_missed, positives; v1.1 checkpoint_entries, entries_without_proof,
landing_tests_missed, sentinel_visits, sentinel_untested; v1.2 data entry: entries,
entries_late, entry_lag_p90_minutes, entries_rejected; v1.2 supervision: findings_new,
findings_open, rectifications_overdue, rechecks_failed, repeat_offenders) and
``alerts_unresolved``, the district's alerts raised by that day's cut-off and not resolved yet,
counted now from the ledger. The table shows them in those four sections, a table each with a
row per district; csv and json give each district's whole row.
"""

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

ROUND_HELP: Final = """A testing round's table (采样进展 / 查漏补测): ``closedloop report round R``.

One row per district with anyone in scope or sampled off the roster: in_scope (on the roster,
or in the cohort, at the close), sampled (of them, sampled between opens_at and closes_at),
missed (in_scope - sampled: the round_missed alerts, the catch-up list), caught_up (of the
missed, sampled within the catch-up window, as of the report), not_on_roster (sampled in the
round but not on the roster: 摸排不全面), catchup_median_hours. The table ends with the
districts' total (no median: medians do not add up); csv and json hold the districts only.

Stages: ``progress`` (hourly while the round is open, as if it closed then), ``close`` (at
closes_at) and ``final`` (at the end of the catch-up window). Without --stage the latest there
is: final, else close, else the latest progress. A progress report is picked with --as-of,
else the latest. The catch-up list itself:
  closedloop alerts list --kind round_missed --round R --format csv
"""

_ROUND_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_STAGE_ORDER: Final = {"progress": 0, "close": 1, "final": 2}


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.ledger.formats import FORMATS

    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    daily = sub.add_parser("daily", help="the 日清日结 table of one local day",
                           description=DAILY_HELP)
    daily.add_argument("--date", required=True, metavar="YYYY-MM-DD",
                       help="the local day of the report, e.g. 2022-09-08")
    daily.add_argument("--district", action="append", help="only this district (repeatable)")
    daily.add_argument("--format", choices=FORMATS, default="table", help="default table")
    daily.add_argument("--policy", metavar="FILE",
                       help="TOML policy: its timezone and daily_cutoff (default the contract's)")
    add_url(daily)
    daily.set_defaults(_report=run_daily)
    rounds = sub.add_parser(
        "round", help="a testing round's progress, close or final table",
        description=ROUND_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  closedloop report round round-citywide\n"
        "  closedloop report round round-citywide --stage progress "
        "--as-of 2022-09-07T10:00:00+08:00\n"
        "  closedloop report round round-citywide --stage close --format csv\n"
        "(round-citywide is the round of closedloop demo and closedloop simulate --round)")
    rounds.add_argument("round_id", metavar="ROUND_ID", help="the round's round_id")
    rounds.add_argument("--stage", choices=tuple(_STAGE_ORDER),
                        help="which report (default the latest: final, close, else progress)")
    rounds.add_argument("--as-of", metavar="T",
                        help="the report describing this instant (RFC 3339 with offset), "
                        "e.g. one hourly progress report; default the latest of the stage")
    rounds.add_argument("--format", choices=FORMATS, default="table", help="default table")
    rounds.add_argument("--policy", metavar="FILE",
                        help="TOML policy: its timezone, for the instants shown")
    add_url(rounds)
    rounds.set_defaults(_report=run_round)


def local_day(text: str) -> date:
    """``--date`` as a calendar day. Parsed here rather than by argparse, whose message for a
    bad value names a Python function instead of the format to write."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--date {text!r} is not a calendar day: write YYYY-MM-DD, "
                         "e.g. 2022-09-08") from None


def run(args: argparse.Namespace) -> int:
    code: int = args._report(args)
    return code


def _describe(reports: list[tuple[str, datetime]], zone: Any) -> str:
    """The stages a round has in the ledger, in a few words: 'progress ×5 (latest …), close …'."""
    parts = []
    for stage in _STAGE_ORDER:
        times = [as_of for s, as_of in reports if s == stage]
        if times:
            latest = max(times).astimezone(zone).isoformat()
            parts.append(f"{stage} ×{len(times)} (latest {latest})" if len(times) > 1
                         else f"{stage} {latest}")
    return ", ".join(parts)


def run_round(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.cli.replay import parse_instant
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger
    from closedloop.streams.ledger.formats import write_rows
    from closedloop.streams.ledger.queries import (
        ROUND_COLUMNS,
        ROUND_FIELDS,
        round_report,
        round_reports,
    )

    round_id: str = args.round_id
    try:
        if not _ROUND_ID.fullmatch(round_id):
            raise ValueError(f"{round_id!r} is not a round_id: 1-64 characters of "
                             "letters, digits and _ . : -")
        policy = load_policy(args.policy)
        as_of = None if args.as_of is None else parse_instant(args.as_of, policy.zone)
    except (ValueError, PolicyError) as exc:
        print(f"closedloop report round: {exc}", file=sys.stderr)
        return 2
    zone = policy.zone

    def query(connection: Any) -> tuple[list[tuple[str, datetime]], tuple[str, datetime] | None,
                                         list[dict[str, Any]]]:
        reports = round_reports(connection, round_id)
        chosen = [(s, t) for s, t in reports
                  if (args.stage is None or s == args.stage)
                  and (as_of is None or int(t.timestamp()) == as_of)]
        if not chosen:
            return reports, None, []
        stage, when = max(chosen, key=lambda r: (_STAGE_ORDER[r[0]], r[1]))
        return reports, (stage, when), round_report(connection, round_id, stage, when)

    try:
        reports, picked, rows = read_ledger(args.url, query)
    except LedgerUnavailable as exc:
        print(f"closedloop report round: {exc}", file=sys.stderr)
        return 1
    if not reports:
        print(f"closedloop report round: no report of round {round_id!r} in the ledger "
              "(is the round_id right, and has the round opened?)", file=sys.stderr)
        return 1
    if picked is None:
        wanted = " ".join(filter(None, [args.stage or "report",
                                        args.as_of and f"as of {args.as_of}"]))
        print(f"closedloop report round: round {round_id!r} has no {wanted} in the ledger; "
              f"it has: {_describe(reports, zone)}", file=sys.stderr)
        return 1
    stage, when = picked
    if args.format == "table":
        print(f"round {round_id} · {stage} · as of {when.astimezone(zone).isoformat()}")
    if not rows:
        print(f"closedloop report round: round {round_id!r} {stage} report: nobody in scope "
              "and nobody sampled off the roster", file=sys.stderr)
        if args.format == "table":
            return 0
    if args.format == "table" and len(rows) > 1:
        counts = ROUND_COLUMNS[1:-1]
        rows = [*rows, {"district": "total", **{c: sum(r[c] for r in rows) for c in counts}}]
    write_rows(rows, ROUND_COLUMNS, args.format, sys.stdout, zone, fields=ROUND_FIELDS)
    return 0


def run_daily(args: argparse.Namespace) -> int:
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
    if args.format != "table":
        write_rows(rows, REPORT_COLUMNS, args.format, sys.stdout, policy.zone)
        return 0
    print(f"{day} · cut-off {cutoff.isoformat()}")
    for title, columns in DAILY_SECTIONS:
        print(f"\n{title}:")
        write_rows(rows, ("district", *columns), "table", sys.stdout, policy.zone)
    return 0
