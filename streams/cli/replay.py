"""Replay a JSON Lines file of events through the engine (CONTRACT.md §6).

Each line is an envelope ``{"topic": "<name>", "value": {...event...}}``, a name of CONTRACT.md
§3 (sampling, lab, travel, followup, cohort, action; v1.1 population, round, checkpoint, area,
clinic), applied in file order. Alerts are written as JSON Lines (stdout
by default), sorted by (raised_at, alert_id) within each flush; a bad line goes to the
dead-letter output with its line number and reason, and the run goes on. With ``--until T``
the clock finally moves to exactly T and everything due by then fires. An event whose
occurred_at is later than its receipt plus the policy's max_clock_skew is rejected
(implausible_time): the receipt is ``--received-at T``, else the wall clock when the run
starts, so a replay that must give the same bytes on any day passes ``--received-at``. The
exit status is 0 unless the input cannot be read or an output cannot be written (1), or an
option is wrong (2).

With ``--round-reports OUT``, testing rounds' ``round-report`` records (progress, close,
final) are written there as JSON Lines in the order they are raised: by as_of, then round_id,
then stage (progress, close, final), within each flush as alerts are (a round arriving after
its close raises its overdue reports at once; they take their place among the others). A
round arriving after a long span of progress reports over many districts hands them over
every 100,000 rows, each hand-over sorted, so that they are never all held in memory.

With ``--escalations OUT``, alerts nobody acknowledged, resolved or satisfied within the
policy's ``escalation.after`` are written there (kind ``escalated``, level 2 then 3). They are
never mixed into the alerts output, whose kinds are the contract's.

With ``--ledger``, everything also goes to the SQL ledger (default $CLOSEDLOOP_DATABASE_URL,
else closedloop.db in the current directory), with the lifecycle the Kafka sink records:
``action`` lines acknowledge or resolve their alert, escalations set its level.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, BinaryIO, Final

from closedloop.agents.actions import explain
from closedloop.schemas.instants import parse_instant
from closedloop.schemas.plausible import EARLIEST, MAX_SPREAD
from closedloop.schemas.policy import Policy, PolicyError, load_policy
from closedloop.streams.app.replay import Extra, ReplayResult, replay_lines
from closedloop.streams.engine.embedded import EmbeddedDriver
from closedloop.streams.ledger import DEFAULT_HELP, database_url

__all__ = ["ProgressLine", "action_summary", "add_parser", "run", "summary"]

EARLIEST_EPOCH = int(EARLIEST.timestamp())


def _plausible(text: str, reference: float, reference_name: str) -> int:
    """The instant ``text`` if it lies from 2000-01-01T00:00:00Z to ``reference`` + 366 days
    (the bounds CONTRACT.md §1 puts on event times), so that no option can run the clock past
    any date the calendar holds, or through millions of daily reports."""
    instant = parse_instant(text)
    if instant < EARLIEST_EPOCH:
        raise ValueError(f"{text!r} is before 2000-01-01T00:00:00Z, earlier than any event")
    if instant > reference + MAX_SPREAD.total_seconds():
        raise ValueError(f"{text!r} is more than 366 days after {reference_name}")
    return instant


class ProgressLine:
    """A one-line progress display on a terminal's stderr, redrawn twice a second."""

    def __init__(self, stream: IO[str], total_bytes: int | None, every: float = 0.5) -> None:
        self.stream = stream
        self.every = every  # seconds between redraws
        self.total = total_bytes
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, lines: int, driver: EmbeddedDriver, alerts: int) -> None:
        """Redraw (at most once every ``every`` seconds) with ``alerts`` raised so far."""
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = lines / max(now - self.started, 1e-9)
        clock = driver.clock.value
        when = driver.cal.iso(clock) if clock > 0 else "-"
        self.stream.write(
            f"\r{lines:,} lines  {rate:,.0f}/s  alerts {alerts:,}"
            f"  clock {when}   "
        )
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("\r" + " " * 79 + "\r")
        self.stream.flush()


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("file", metavar="FILE|-", help="JSON Lines input; - reads stdin")
    parser.add_argument(
        "--until", metavar="T",
        help="finally move the clock to T and fire all that is due; T is RFC 3339 with an "
        "offset, e.g. 2022-09-09T00:00:00+08:00 (a date alone is refused, with the instant "
        "to write instead: it could mean either midnight)",
    )
    parser.add_argument(
        "--received-at", metavar="T",
        help="when the lines count as received (RFC 3339 with offset; default: now): an "
        "occurred_at later than T + max_clock_skew is rejected as implausible_time",
    )
    parser.add_argument("--policy", metavar="FILE", help="TOML policy (default: the contract's)")
    parser.add_argument("--alerts", metavar="OUT",
                        help="alerts JSON Lines (default, or -: standard output; any OUT "
                        "below may be - too)")
    parser.add_argument(
        "--escalations", metavar="OUT",
        help="escalated alerts JSON Lines (kind escalated; written only with this option, "
        "never to the alerts output: the contract's alerts have no such kind)",
    )
    parser.add_argument("--deadletter", metavar="OUT", help="rejected lines with reasons")
    parser.add_argument("--reports", metavar="OUT", help="daily closure reports JSON Lines")
    parser.add_argument(
        "--round-reports", metavar="OUT",
        help="testing rounds' progress, close and final reports JSON Lines, in the order "
        "raised (by as_of, then round_id, then stage: progress, close, final; within each "
        "flush, as alerts are)",
    )
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    parser.add_argument(
        "--ledger", "--url", dest="ledger", metavar="URL", nargs="?", const="",
        type=_ledger_url,
        help="also write alerts with their actions and escalations, reports, dead letters and "
        f"person states to this SQL ledger; without URL the default ({DEFAULT_HELP}). An "
        "embedded SQLite file is created and upgraded on first use",
    )


def _ledger_url(text: str) -> str:
    """Refuses a value that is no URL: most likely FILE, taken by a bare ``--ledger``."""
    if text and "://" not in text:  # "" is the bare option, the default ledger
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a database URL (e.g. sqlite:///closedloop.db); for the default "
            "ledger put --ledger after FILE")
    return text


def _open_input(name: str, stack: ExitStack) -> tuple[Iterator[bytes], int | None]:
    if name == "-":
        return iter(sys.stdin.buffer), None
    handle: BinaryIO = stack.enter_context(open(name, "rb"))  # noqa: SIM115
    return iter(handle), Path(name).stat().st_size


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
        until = None if args.until is None else parse_instant(args.until, policy.zone)
    except (PolicyError, ValueError) as exc:
        print(f"closedloop replay: {exc}", file=sys.stderr)
        return 2
    try:
        received_at = (time.time() if args.received_at is None
                       else _plausible(args.received_at, time.time(), "now"))
    except ValueError as exc:
        print(f"closedloop replay: --received-at: {exc}", file=sys.stderr)
        return 2
    if until is not None:
        try:
            _plausible(args.until, received_at, "the receipt (now, or --received-at)")
        except ValueError as exc:
            print(f"closedloop replay: --until: {exc}", file=sys.stderr)
            return 2
    with ExitStack() as stack:
        try:
            lines, size = _open_input(args.file, stack)
        except OSError as exc:
            print(f"closedloop replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        outputs = {}
        for name in ("alerts", "escalations", "deadletter", "reports", "round_reports"):
            path = getattr(args, name)
            try:
                outputs[name] = (None if not path else sys.stdout.buffer if path == "-"
                                 else stack.enter_context(open(path, "wb")))
            except OSError as exc:
                print(f"closedloop replay: cannot write {path}: {exc.strerror}", file=sys.stderr)
                return 2
        alerts_out = outputs["alerts"] or sys.stdout.buffer
        progress = ProgressLine(sys.stderr, size) if sys.stderr.isatty() else None
        ledger = None
        if args.ledger is not None:
            from closedloop.streams.ledger.embedded import open_for_command

            ledger = open_for_command(database_url(args.ledger or None), "replay")
            if ledger is None:
                return 2
            stack.callback(ledger.close)
        extra = [] if ledger is None else [Extra(at, "action", event)
                                           for at, event in ledger.own_actions()]
        try:
            result = replay_lines(
                lines, policy, until=until, alerts_out=alerts_out,
                escalations_out=outputs["escalations"], reports_out=outputs["reports"],
                deadletter_out=outputs["deadletter"], round_reports_out=outputs["round_reports"],
                progress=progress, ledger=ledger, received_at=received_at, extra=extra,
            )
        except OSError as exc:  # reading the input, or writing an output (a full disk)
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"closedloop replay: stopped: {where}{exc.strerror or exc}", file=sys.stderr)
            return 1
        alerts_out.flush()
    if not args.quiet:
        kept = ([f"written to {args.escalations}"] if args.escalations else []) + (
            ["levels recorded in the ledger"] if ledger is not None else [])
        print(summary(result, policy, deadletter_kept=bool(args.deadletter),
                      escalations_kept=kept, until=until,
                      reports_kept=bool(args.reports) or ledger is not None,
                      round_reports_kept=bool(args.round_reports) or ledger is not None),
              file=sys.stderr)
    return 0


_DONE: Final = (("resolve", "resolved", "resolved"), ("ack", "acknowledged", "acknowledged"),
                ("assign", "assigned", "assigned"))


def action_summary(stats: Counter[str]) -> str | None:
    """What operators' actions did in the engine: "operator actions 4: 2 alerts resolved,
    1 acknowledged; 1 action ignored: its subject is not the alert's" (None: no action);
    the ledger's actions on alerts the input does not raise are counted apart."""
    done: list[str] = []
    for action, one, many in _DONE:
        count = stats.get(f"actions_applied:{action}", 0)
        if count:
            noun = "" if done else (" alert" if count == 1 else " alerts")
            done.append(f"{count:,}{noun} {one if count == 1 else many}")
    ignored = {k.split(":", 1)[1]: v for k, v in stats.items()
               if k.startswith("actions_ignored:")}
    total = sum(v for k, v in stats.items() if k.startswith("actions_applied:")) + sum(
        ignored.values())
    elsewhere = stats.get("ledger_actions_elsewhere", 0)
    apart = (f"{elsewhere:,} action{'s' if elsewhere != 1 else ''} recorded in the ledger "
             f"{'are' if elsewhere != 1 else 'is'} about alerts this input does not raise "
             "(left as they were)") if elsewhere else ""
    if not total:
        return f"operator actions: {apart}" if apart else None
    parts = [", ".join(done)] if done else []
    if total > sum(v for k, v in stats.items() if k.startswith("actions_applied:")):
        parts.append(explain(ignored))
    if apart:
        parts.append(apart)
    fed = stats.get("ledger_actions", 0) - elsewhere
    origin = f" ({fed:,} of them recorded in the ledger)" if fed else ""
    return f"operator actions {total:,}{origin}: " + "; ".join(parts)


_SUPERVISION_COUNTED = {"duplicate_findings": "findings given again (same finding_id)",
                        "orphan_records": "records whose finding never came",
                        "rectifications_ignored": "rectifications before a recheck was due"}


def summary(
    result: ReplayResult, policy: Policy, *, deadletter_kept: bool,
    escalations_kept: Sequence[str] = (), keep_deadletter: str = "--deadletter FILE",
    until: int | None = None, reports_kept: bool = True, round_reports_kept: bool = True,
) -> str:
    """A closing summary: events read, rejected by reason, alerts by kind, escalations,
    reports, the final clock (and an ``until`` the input had already passed).

    What was not kept anywhere says which option keeps it (``keep_deadletter`` for rejected
    lines: the demo's is ``--out DIR``); ``escalations_kept`` says where the escalations went
    (a file, the ledger).
    """
    stats = result.stats
    rejected = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("rejected:")}
    applied = sum(v for k, v in stats.items() if k.startswith("applied:"))
    lines = [
        f"events read {stats.get('events_read', 0):,}; applied {applied:,}; "
        f"duplicates ignored {stats.get('duplicates_ignored', 0):,}; "
        f"rejected {sum(rejected.values()):,}"
        + (f"; blank lines {stats['blank_lines']:,}" if stats.get("blank_lines") else ""),
    ]
    if rejected:
        lines.append("  rejected by reason: " + ", ".join(
            f"{reason} {count:,}" for reason, count in sorted(rejected.items())))
        if not deadletter_kept:
            lines.append(f"  (rejected lines were not kept: pass {keep_deadletter} to keep them)")
    lines.append(f"alerts {sum(result.alerts_by_kind.values()):,}" + (
        ": " + ", ".join(f"{k} {v}" for k, v in sorted(result.alerts_by_kind.items()))
        if result.alerts_by_kind else ""))
    if result.escalations:
        where = f" ({', '.join(escalations_kept)})" if escalations_kept else ""
        lines.append(f"escalations {result.escalations:,}{where}: alerts nobody acknowledged, "
                     "resolved or satisfied in time, sent up a level (2, then 3)")
        if not escalations_kept:
            lines.append("  (escalations were not kept: pass --escalations FILE to keep them)")
    actions = action_summary(stats)
    if actions:
        lines.append(actions)
    ignored = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("supervision:")}
    if ignored:
        lines.append("supervision records counted, not applied: " + ", ".join(
            f"{_SUPERVISION_COUNTED[name]} {ignored[name]:,}" for name in _SUPERVISION_COUNTED
            if ignored.get(name)))
    if stats.get("entries_known_lag"):  # v1.2: lines that carried their own received_at
        lines.append(f"entries of known entry lag {stats['entries_known_lag']:,}; late "
                     f"{stats.get('entries_late', 0):,} (longer than their topic's "
                     "entry_within)")
    lines.append(f"daily reports {result.reports:,}" + (
        "" if reports_kept or not result.reports
        else " (not kept: pass --reports FILE to keep them)"))
    if result.round_reports:
        lines.append(f"round reports {result.round_reports:,}" + (
            "" if round_reports_kept else " (not kept: pass --round-reports FILE to keep them)"))
    if result.clock > -(2**61):
        def shown(instant: int) -> str:
            return datetime.fromtimestamp(instant, policy.zone).isoformat()

        lines.append(f"clock at end {shown(result.clock)}")
        if until is not None and result.clock > until:
            lines.append(f"  (--until {shown(until)} "
                         "was behind the input's own clock, which never goes back: everything "
                         "due by the clock at end fired)")
    return "\n".join(lines)
