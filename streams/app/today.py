"""Today (日清日结) at a glance: each district's standing, most behind first, and the trend of
its overdue follow-ups.

::

    from closedloop.streams.app import today
    board = today.board(connection, caller, policy)           # NoReport-free: a new ledger
    board.day, board.rows, board.total, board.trend           # is a board with no report day

One row per district the caller sees, from the latest daily report (its counts as the engine
wrote them at the cut-off) and the open alerts now (raised or acknowledged: ``open``, and of
them those escalated to level 2 and 3). Alerts with no district (a silent lab, an orphan
result) make a row of their own (district None), for city-level callers only. Rows are
ranked by :func:`behind`; ``trend`` holds each district's ``followup_overdue_open`` on each
of the last ``days`` report days up to the latest (None where it has no report that day).

``findings`` (contract v1.2 supervision) is one row per district with open findings now or
supervision counts in the latest report: the open findings by severity (from the ledger's
findings, as of now) beside the report's findings_new, findings_open,
rectifications_overdue, rechecks_failed and repeat_offenders (at its cut-off); most open
critical findings first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.agents.calendar import Calendar
from closedloop.schemas.policy import Policy
from closedloop.streams.app.alerts import OPEN, AlertFilter, count_alerts_by
from closedloop.streams.app.caller import Caller
from closedloop.streams.app.reports import report_days, totals
from closedloop.streams.ledger import queries

__all__ = ["COUNTS", "FINDING_COUNTS", "SEVERITIES", "SUPERVISION", "TREND", "Board", "behind",
           "board"]

REPORTED: Final = ("followup_overdue_open", "tests_missed", "positives", "pushed", "located")
"""The daily report's counts the board shows."""
COUNTS: Final = (*REPORTED, "open", "level2", "level3")
TREND: Final = "followup_overdue_open"
SEVERITIES: Final = ("critical", "major", "minor")
SUPERVISION: Final = ("findings_new", "findings_open", "rectifications_overdue",
                      "rechecks_failed", "repeat_offenders")
"""The daily report's supervision counts the board shows."""
FINDING_COUNTS: Final = (*SEVERITIES, "open_findings", *SUPERVISION)


@dataclass(frozen=True, slots=True)
class Board:
    day: date | None  # the latest report day; None when the ledger has no daily report yet
    cutoff: datetime | None
    rows: list[dict[str, Any]]  # district, reported (bool), each of COUNTS
    total: dict[str, Any]
    trend: dict[str, list[tuple[date, int | None]]]  # district -> (day, value), oldest first
    findings: list[dict[str, Any]] = field(default_factory=list)  # see the module's docstring
    findings_total: dict[str, Any] = field(default_factory=dict)


def behind(row: dict[str, Any]) -> tuple[int, ...]:
    """The ranking key, most behind first when sorted: open alerts at the city command
    (level 3), then at the district command (level 2), then people whose follow-up is
    overdue, then open alerts of any level. An escalation is a lapse nobody handled for hours,
    so it outranks a count of lapses still at their first level."""
    return (-int(row["level3"]), -int(row["level2"]), -int(row["followup_overdue_open"] or 0),
            -int(row["open"]))


def board(connection: Connection, caller: Caller, policy: Policy, *, days: int = 14) -> Board:
    """The caller's districts today: see the module's docstring."""
    found = report_days(connection, caller)
    day = found[0][0] if found else None
    reported: dict[str, dict[str, Any]] = {}
    cutoff = None
    if day is not None:
        cutoff = datetime.fromtimestamp(
            Calendar(policy.zone, policy.daily_cutoff).cutoff_at(day), policy.zone)
        for found_row in queries.daily_report(connection, day, cutoff, (), caller.districts,
                                              backlog=False):
            reported[found_row["district"]] = found_row
    counts = count_alerts_by(connection, caller, AlertFilter(states=OPEN),
                             by=("district", "level"))
    districts: set[str | None] = {*reported, *(key[0] for key in counts)}
    rows = []
    for district in districts:
        report = reported.get(district or "")
        row: dict[str, Any] = {"district": district, "reported": report is not None}
        for name in REPORTED:
            row[name] = None if report is None else int(report[name] or 0)
        levels = {level: n for (d, level), n in counts.items() if d == district}
        row["open"] = sum(levels.values())
        row["level2"] = levels.get("2", 0)
        row["level3"] = levels.get("3", 0)
        rows.append(row)
    rows.sort(key=lambda row: (*behind(row), row["district"] is None, row["district"] or ""))
    trend = _trend(connection, caller, day, days, [r["district"] for r in rows
                                                   if r["district"] is not None])
    findings = _findings(connection, caller, reported)
    return Board(day, cutoff, rows, totals(rows, COUNTS), trend, findings,
                 totals(findings, FINDING_COUNTS))


def _findings(connection: Connection, caller: Caller, reported: dict[str, dict[str, Any]]
              ) -> list[dict[str, Any]]:
    """Open findings by district and severity now, beside the report's supervision counts."""
    open_now = queries.open_findings(connection, caller.districts)
    districts = {district for district, _ in open_now} | {
        district for district, report in reported.items()
        if any(report.get(name) for name in SUPERVISION)}
    rows = []
    for district in districts:
        row: dict[str, Any] = {"district": district}
        for severity in SEVERITIES:
            row[severity] = open_now.get((district, severity), 0)
        row["open_findings"] = sum(row[severity] for severity in SEVERITIES)
        report = reported.get(district)
        for name in SUPERVISION:
            row[name] = None if report is None else int(report.get(name) or 0)
        rows.append(row)
    rows.sort(key=lambda row: (*(-row[severity] for severity in SEVERITIES), row["district"]))
    return rows


def _trend(connection: Connection, caller: Caller, last: date | None, days: int,
           districts: Sequence[str]) -> dict[str, list[tuple[date, int | None]]]:
    if last is None:
        return {}
    first = last - timedelta(days=days - 1)
    values = {(day, district): value for day, district, value in
              queries.daily_series(connection, first, last, TREND, caller.districts)}
    span = [first + timedelta(days=n) for n in range(days)]
    return {district: [(day, values.get((day, district))) for day in span]
            for district in sorted({*districts, *(d for _, d in values)})}
