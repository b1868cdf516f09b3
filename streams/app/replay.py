"""Replay's run loop: a file's lines through the engine, outputs written as they flush.

``replay_lines`` is what ``closedloop replay`` and ``demo`` run, and what the benchmarks and
tests measure: lines in, JSON Lines out (CONTRACT.md §6), optionally the SQL ledger too.
Options, files and the closing summary belong to the command (``streams/cli/replay.py``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Final, Protocol

import msgspec

from closedloop.agents.rounds import STAGES
from closedloop.schemas.events import Action, Event
from closedloop.schemas.outputs import Alert, RoundReport
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.embedded import EmbeddedDriver, Origin, Outputs
from closedloop.streams.engine.envelopes import blank
from closedloop.streams.engine.gc_tuning import for_throughput

if TYPE_CHECKING:  # imported only with --ledger: SQLAlchemy is not light
    from closedloop.streams.ledger.embedded import ReplayLedger

__all__ = ["FLUSH_EVERY", "Extra", "Progress", "ReplayResult", "merge_extra", "replay_lines"]

FLUSH_EVERY = 50_000
_encode = msgspec.json.Encoder().encode


class Progress(Protocol):
    """Where a long replay says how far it is (a terminal's progress line)."""

    def update(self, lines: int, driver: EmbeddedDriver, alerts: int) -> None: ...

    def done(self) -> None: ...


@dataclass(slots=True)
class ReplayResult:
    stats: Counter[str]
    alerts_by_kind: Counter[str]
    reports: int
    clock: int
    escalations: int = 0
    keyed_steps: int = 0  # applies and fires over the stages (the benchmarks' floor)
    round_reports: int = 0


def _sorted_alerts(alerts: list[Alert]) -> list[Alert]:
    """§6: by (raised_at, alert_id), raised_at as the instant it names, not as text: in a
    policy zone with summer time the offsets differ (02:15+01:00 is after 02:30+02:00)."""
    return sorted(alerts, key=lambda a: (datetime.fromisoformat(a.raised_at).timestamp(),
                                         a.alert_id))


_STAGE_RANK: Final = {stage: rank for rank, stage in enumerate(STAGES)}


def _report_order(report: RoundReport) -> tuple[float, str, int]:
    """§6: round reports by as_of, then round_id, then stage (progress, close, final), within
    each flush as alerts are sorted within each flush. The engine raises them in that order
    at each clock step, but a round arriving after its close raises its overdue reports at
    once, after those of other rounds with a later as_of."""
    return (datetime.fromisoformat(report.as_of).timestamp(), report.round_id,
            _STAGE_RANK[report.stage])


def replay_lines(
    lines: Iterable[bytes],
    policy: Policy,
    *,
    until: int | None = None,
    alerts_out: IO[bytes] | None = None,
    escalations_out: IO[bytes] | None = None,
    reports_out: IO[bytes] | None = None,
    deadletter_out: IO[bytes] | None = None,
    round_reports_out: IO[bytes] | None = None,
    progress: Progress | None = None,
    ledger: ReplayLedger | None = None,
    received_at: float | None = None,
    extra: Iterable[Extra] = (),
) -> ReplayResult:
    """Drive the embedded engine over ``lines``; the reusable core of ``closedloop replay``.

    With ``ledger``, every flush's outputs and finally the person states go to the SQL ledger.
    ``received_at`` (epoch seconds) is when every line counts as received; by default, now.
    ``extra``: events from elsewhere (the ledger's own actions), by instant: each is applied
    just before the first line whose occurred_at is later, else at the end before ``until``,
    without moving the clock (:func:`merge_extra`).
    """
    driver = EmbeddedDriver(policy, time.time() if received_at is None else received_at)
    alerts_by_kind: Counter[str] = Counter()
    reports = 0
    buffered = 0
    round_reports = 0

    escalations = 0
    flushed_alerts = 0  # for the progress line
    pending = sorted(extra, key=lambda item: item.at)
    # the alerts the ledger's own actions are about, and those of them this input raises
    acted_on = {item.event.alert_id for item in pending if isinstance(item.event, Action)}
    raised_here: set[str] = set()

    def flush() -> None:
        nonlocal reports, buffered, escalations, flushed_alerts
        flushed_alerts += len(driver.out.alerts)
        out = driver.drain()
        if ledger is not None:
            ledger.write(out)
        if acted_on:
            raised_here.update(a.alert_id for a in out.alerts if a.alert_id in acted_on)
        for alert in _sorted_alerts(out.alerts):
            alerts_by_kind[alert.kind] += 1
            if alerts_out is not None:
                alerts_out.write(_encode(alert) + b"\n")
        for escalation in _sorted_alerts(out.escalations):
            escalations += 1
            if escalations_out is not None:
                escalations_out.write(_encode(escalation) + b"\n")
        for report in sorted(out.reports, key=lambda r: (r.date, r.district)):
            reports += 1
            if reports_out is not None:
                reports_out.write(_encode(report) + b"\n")
        write_round_reports(out.round_reports)
        for letter in out.dead_letters:
            if deadletter_out is not None:
                deadletter_out.write(_encode(letter) + b"\n")
        buffered = 0

    def write_round_reports(held: list[RoundReport]) -> None:
        nonlocal round_reports
        round_reports += len(held)
        for round_report in sorted(held, key=_report_order):
            if round_reports_out is not None:
                round_reports_out.write(_encode(round_report) + b"\n")

    def spill(held: list[RoundReport]) -> None:
        """Round reports written before the next flush: a round arriving after a year of
        hourly progress over many districts makes thousands at once (the engine hands them
        over every SPILL_ROWS rows; each hand-over is sorted as a flush is)."""
        if ledger is not None:
            ledger.write(Outputs(round_reports=list(held)))
        write_round_reports(held)
        held.clear()

    driver.spill = spill
    fed = list(pending)
    with for_throughput():
        for number, line in enumerate(lines, start=1):
            if blank(line):
                driver.stats["blank_lines"] += 1
                continue
            if pending:
                pending = merge_extra(driver, pending, line)
            driver.pipe_line(line.rstrip(b"\r\n"), Origin(line=number))
            if len(driver.out.alerts) + len(driver.out.dead_letters) >= FLUSH_EVERY:
                flush()
            if progress is not None:
                progress.update(number, driver, flushed_alerts + len(driver.out.alerts))
        merge_extra(driver, pending, None)
        if until is not None:
            driver.advance_to(until)
        driver.settle_actions()
        flush()
    if ledger is not None:
        ledger.finish(driver)
    if progress is not None:
        progress.done()
    _elsewhere(driver.stats, fed, raised_here)
    return ReplayResult(driver.stats, alerts_by_kind, reports, driver.clock.value, escalations,
                        driver.keyed_steps, round_reports)




def _elsewhere(stats: Counter[str], fed: list[Extra], raised_here: set[str]) -> None:
    """Count apart the ledger's actions on alerts this input never raises (another city's,
    an earlier file's): the engine, which sees one subject's state, ignores them as "its
    subject is not the alert's", which says nothing true of them to an operator who
    acknowledged an alert of another run. They are left as they were in the ledger."""
    elsewhere = sum(1 for item in fed if isinstance(item.event, Action)
                    and item.event.alert_id not in raised_here)
    moved = min(elsewhere, stats.get("actions_ignored:not_subjects_alert", 0))
    if moved:
        stats["actions_ignored:not_subjects_alert"] -= moved
        stats["ledger_actions_elsewhere"] += moved


@dataclass(frozen=True, slots=True)
class Extra:
    """An event fed to a replay from outside its input, at ``at`` (epoch seconds)."""

    at: int
    topic: str
    event: Event


_OCCURRED_AT: Final = re.compile(rb'"occurred_at"\s*:\s*"([^"]{1,64})"')


def _occurred_at(line: bytes) -> int | None:
    """A line's occurred_at, read without decoding it (None when it has none to read)."""
    match = _OCCURRED_AT.search(line)
    if match is None:
        return None
    try:
        value = datetime.fromisoformat(match.group(1).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return int(value.timestamp()) if value.tzinfo is not None else None


def merge_extra(driver: EmbeddedDriver, pending: list[Extra], line: bytes | None) -> list[Extra]:
    """Apply the ``pending`` events due before ``line`` (those earlier than its occurred_at;
    every one when ``line`` is None: the end of the input); returns those still pending.

    They do not move the clock: an operator acting today on an alert of a city replayed from
    2022 must not fire four years of deadlines. Lines whose time cannot be read are passed.
    """
    if line is not None:
        at = _occurred_at(line)
        if at is None:
            return pending
        cut = next((i for i, item in enumerate(pending) if item.at >= at), len(pending))
    else:
        cut = len(pending)
    for item in pending[:cut]:
        driver.stats["events_read"] += 1
        driver.stats["ledger_actions"] += 1
        driver.pipe_event(item.topic, item.event, b"", Origin(topic=item.topic), clocked=False)
    return pending[cut:]
