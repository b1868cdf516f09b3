"""The ``closedloop`` command line: one sub-command per module, each with ``add_parser``/``run``."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Final

__all__ = ["main", "started"]

_started = [time.monotonic()]


def started() -> float:
    """When the running command started (``time.monotonic()``, set as :func:`main` is
    entered): promises such as "one line within 5 s" count from here."""
    return _started[0]

# (command, module under closedloop.streams, one-line help). Modules are imported lazily so
# that ``closedloop --help`` stays fast and a command's heavy imports cost only its own runs.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "cli.demo", "a small simulated city through the engine (no services needed)"),
    ("replay", "cli.replay", "run a JSON Lines file of events through the engine, write alerts"),
    ("simulate", "cli.simulate", "write a seeded synthetic city as replay JSON Lines"),
    ("worker", "cli.worker", "run the stream processor on Kafka ($CLOSEDLOOP_KAFKA)"),
    ("produce", "cli.produce", "publish a replay file's events to their Kafka topics"),
    ("clock", "cli.clock", "move an event-mode worker's clock to T (like replay --until)"),
    ("alerts", "cli.alerts", "list alerts from the ledger, act on one, or watch new ones"),
    ("timeline", "cli.timeline", "a person's, tube's or any subject's history in the ledger"),
    ("console", "console.command",
     "the command centre's web console on the ledger (指挥部), and its accounts"),
    # the SQL ledger's schema, its Kafka sink and the operators' report
    ("db", "ledger.db_cmd", "create or migrate the SQL ledger's schema (Alembic)"),
    ("sink", "ledger.sink_cmd", "record the output topics in the SQL ledger"),
    ("report", "cli.report",
     "the daily closure (日清日结) and testing rounds' tables from the ledger"),
    ("pseudonymize", "cli.pseudonymize", "turn raw identifiers into HMAC-SHA256 pseudonyms"),
    ("policy", "cli.policy", "print or check a policy file"),
    ("bench", "cli.bench", "benchmarks: ratios against a baseline measured in the same run"),
)

EPILOG = """\
examples:
  closedloop demo                                  # a simulated city, end to end, in seconds
  closedloop simulate --people 2000 --days 3 -o city.jsonl
  closedloop replay city.jsonl --until 2022-09-10T00:00:00+08:00 --alerts alerts.jsonl
  closedloop pseudonymize --column id_number people.csv > pseudonyms.csv
  closedloop replay city.jsonl --alerts alerts.jsonl --ledger   # also into ./closedloop.db
  closedloop alerts list --open                    # the ledger: ./closedloop.db by default
  closedloop report daily --date 2022-09-08
  closedloop report round R1                       # a testing round's coverage by district
  closedloop alerts list --kind round_missed --round R1 --format csv   # the catch-up list

The contract (topics, fields, rules, alert kinds) is schemas/CONTRACT.md; see README.md.
"""


_MARKUP: Final = (
    (re.compile(r"\s*\(:(?:mod|func|class|meth|attr):`[^`]+`\)"), ""),  # a pointer into code
    (re.compile(r":(?:mod|func|class|meth|attr):`~?([^`]+)`"), r"\1"),
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"\*\*([^*\n]+)\*\*"), r"\1"),
)


def plain(text: str | None) -> str | None:
    """Help text as operators read it: the reStructuredText markup of docstrings removed
    (``x`` becomes x, a pointer to a Python module disappears)."""
    if text is None:
        return None
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Every description, epilog and option help of ``parser`` and its sub-commands."""
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    for action in parser._actions:  # argparse keeps them nowhere public
        if action.help not in (None, argparse.SUPPRESS):
            action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for child in set(action.choices.values()):
                _plain_help(child)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, that command's module alone is loaded (the
    others are listed, not imported: a command pays for its own imports, not every one's)."""
    parser = argparse.ArgumentParser(
        prog="closedloop",
        description="Closed-loop epidemic test tracking: every pushed traveller located and "
        "followed up daily, every key worker tested on schedule, every swab matched to its "
        "result, and every lapse raised the moment it happens.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"closedloop {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, summary in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=summary)
            continue
        module = _load(module_name)
        if module is None:
            continue
        command = sub.add_parser(
            name,
            help=summary,
            description=(module.__doc__ or summary).strip().splitlines()[0],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_parser(command)
        command.set_defaults(_run=module.run, _parser=command)
    _plain_help(parser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("closedloop")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "(not installed)"


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"closedloop.streams.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"closedloop.streams.{module_name}":
            return None
        raise


ALERTS_COMMANDS: tuple[str, ...] = ("list", "ack", "resolve", "assign", "tail")


def _unknown_alerts_action(argv: Sequence[str]) -> str | None:
    """One line for ``closedloop alerts acknowledge …``: the actions there are (argparse
    would print its usage and a list of every sub-command)."""
    if len(argv) < 2 or argv[0] != "alerts" or argv[1].startswith("-") or (
            argv[1] in ALERTS_COMMANDS):
        return None
    from closedloop.streams.app.actions import ActionRefused, parse_action

    try:
        parse_action(argv[1])
    except ActionRefused as exc:
        return f"closedloop alerts: {exc}; or list, tail"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from closedloop.streams.cli.stderr import redacted_stderr

    with redacted_stderr():  # what a command echoes of its arguments, never an identifier
        try:
            return _main(argv)
        except Exception:
            # printed here, through the redaction: left to the interpreter, a traceback
            # comes after the redaction has ended, and an exception may quote an argument
            traceback.print_exc()
            return 1


def _main(argv: Sequence[str] | None) -> int:
    _started[0] = time.monotonic()
    if (unknown := _unknown_alerts_action(sys.argv[1:] if argv is None else argv)) is not None:
        print(unknown, file=sys.stderr)
        return 2
    given = list(sys.argv[1:] if argv is None else argv)
    wanted = given[0] if given and given[0] in {name for name, _, _ in COMMANDS} else None
    parser = build_parser(wanted)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, with its usage, not the top level's
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    from closedloop.streams.kafka.settings import (
        KafkaSettings,
        KafkaSetupError,
        connection_failure,
        watch_connections,
    )

    watch_connections()
    try:
        return int(run(args))
    except BrokenPipeError:
        return 0
    except KafkaSetupError as exc:  # one line for the operator, no traceback, never a secret
        print(f"closedloop {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        message = connection_failure(exc, KafkaSettings.from_env())
        if message is None and isinstance(exc, OSError):
            message = _os_error(exc)
        if message is None:
            raise
        print(f"{_named(args)}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _named(args: argparse.Namespace) -> str:
    """The command as typed, with its action: ``closedloop alerts list``."""
    action = next((getattr(args, name) for name in ("alerts_command", "report_command",
                                                   "db_command", "policy_command", "bench")
                   if isinstance(getattr(args, name, None), str)), None)
    return " ".join(part for part in ("closedloop", args.command, action) if part)


def _os_error(exc: OSError) -> str:
    """A file that does not open, a full disk: one line for people (not a traceback), the
    file's name first when there is one."""
    problem = exc.strerror or str(exc)
    return f"{exc.filename}: {problem}" if exc.filename else problem


if __name__ == "__main__":
    sys.exit(main())
