"""Print the default policy, or check a policy file before a run uses it.

``closedloop policy show`` prints CONTRACT.md §4's defaults as a TOML file to copy and edit;
``closedloop policy check FILE`` loads it as ``replay``/``worker`` would, and exits 2 naming
the key and the problem when it is wrong.
"""

from __future__ import annotations

import argparse
import sys

from closedloop.schemas.identifiers import redact_text
from closedloop.schemas.policy import PolicyError, default_policy_text, load_policy

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    sub.add_parser("show", help="print the default policy (TOML)")
    check = sub.add_parser("check", help="validate a policy file")
    check.add_argument("file", metavar="FILE",
                       help="the TOML policy file to check, as replay and the worker load it")


def run(args: argparse.Namespace) -> int:
    if args.policy_command == "show":
        sys.stdout.write(default_policy_text())
        return 0
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(f"closedloop policy: {exc}", file=sys.stderr)
        return 2
    print(f"{redact_text(args.file)}: valid ({policy.timezone}, cut-off "
          f"{policy.daily_cutoff // 3600:02d}:{policy.daily_cutoff % 3600 // 60:02d}, "
          f"{len(policy.cohorts)} cohorts)")
    return 0
