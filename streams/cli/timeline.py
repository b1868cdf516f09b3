"""Everything the ledger knows about one subject, in time order.

closedloop timeline SUBJECT [--format table|json] [--ledger URL]

SUBJECT is a person's pseudonym, a tube, or any alert's subject (a site, a lab, a unit). The
timeline shows its alerts (when raised), the operators' actions on them (acknowledged,
resolved, assigned, and actions ignored with the reason), each escalation level, the system
closing a round_missed alert when the person was caught up, and the subject's rejected
records (their reason and where they came from, never their content).

Status changes shown are those of the subject's alerts: the ledger keeps a person's own
state (regimen, tests) as its latest value only, so its history is not shown. Alerts,
actions and escalations are at their instants in event time (an action at the time the
operator took it); a rejected record at the time the ledger recorded it.

examples:
  closedloop timeline p:eb47c6aa74c0
  closedloop timeline tb-00000114 --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.ledger.options import add_ledger

    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("subject", metavar="SUBJECT",
                        help="a person's pseudonym, a tube id, or another alert subject")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default) or json")
    parser.add_argument("--policy", metavar="FILE", help="policy file: its time zone")
    add_ledger(parser)


def run(args: argparse.Namespace) -> int:
    from closedloop.schemas.identifiers import contains_raw
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app.caller import Caller
    from closedloop.streams.app.timeline import timeline
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger

    command = "closedloop timeline"
    if contains_raw(args.subject):
        print(f"{command}: the subject looks like a resident ID or mobile number: the ledger "
              "holds pseudonyms only (closedloop pseudonymize)", file=sys.stderr)
        return 2
    try:
        zone = load_policy(args.policy).zone
    except PolicyError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    caller = Caller.command_line()
    try:
        entries = read_ledger(args.ledger, lambda c: timeline(c, caller, args.subject, zone))
    except LedgerUnavailable as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    if not entries:
        print(f"{command}: nothing about {args.subject!r} in the ledger", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = [
        {"at": e.at.astimezone(zone).isoformat(), "what": e.what, "alert_id": e.alert_id,
         "text": e.text} for e in entries]
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return 0
    print(f"timeline of {args.subject}: {len(rows)} entries")
    for row in rows:
        print(f"{row['at']}  {row['what']:<14} {row['text']}"
              + (f"  [{row['alert_id']}]" if row["alert_id"] else ""))
    return 0
