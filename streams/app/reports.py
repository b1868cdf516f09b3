"""The daily closure (日清日结) and testing rounds' reports, as operators read them.

::

    from closedloop.streams.app import reports
    reports.report_days(connection, caller)                 # [(date, districts)], newest first
    table = reports.daily(connection, caller, policy)       # the latest day (or day=…)
    table.day, table.rows, table.total                      # total: the districts summed
    reports.rounds(connection, caller)                      # every round and its reports
    table = reports.round_table(connection, caller, "round-citywide")   # the latest report
    reports.round_coverage(connection, caller, "round-citywide")  # {district: [(as_of, …)]}

A district-limited caller gets its districts' rows only (and totals over them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.agents.calendar import Calendar
from closedloop.schemas.policy import Policy
from closedloop.streams.app.caller import Caller
from closedloop.streams.app.names import STAGES
from closedloop.streams.ledger import queries
from closedloop.streams.ledger.store import REPORT_COUNTS

__all__ = [
    "DAILY_COUNTS",
    "DAILY_SUMS",
    "ROUND_COUNTS",
    "STAGES",
    "DailyTable",
    "NoReport",
    "RoundSummary",
    "RoundTable",
    "daily",
    "report_days",
    "round_coverage",
    "round_table",
    "rounds",
    "totals",
]

DAILY_COUNTS: Final = (*REPORT_COUNTS, "alerts_unresolved")
DAILY_SUMS: Final = tuple(c for c in DAILY_COUNTS if c != "entry_lag_p90_minutes")
"""The daily figures a district total adds up (a percentile does not add up)."""
ROUND_COUNTS: Final = ("in_scope", "sampled", "missed", "caught_up", "not_on_roster")
_RANK: Final = {stage: rank for rank, stage in enumerate(STAGES)}


class NoReport(LookupError):
    """No such report in the ledger; the message is one line saying what there is."""


@dataclass(frozen=True, slots=True)
class DailyTable:
    day: date
    cutoff: datetime
    rows: list[dict[str, Any]]
    total: dict[str, Any]  # district "total": every count summed over the rows


@dataclass(frozen=True, slots=True)
class RoundSummary:
    round_id: str
    reports: list[tuple[str, datetime]]  # (stage, as_of), oldest first

    @property
    def latest(self) -> tuple[str, datetime]:
        """final, else close, else the latest progress."""
        return max(self.reports, key=lambda r: (_RANK[r[0]], r[1]))


@dataclass(frozen=True, slots=True)
class RoundTable:
    round_id: str
    stage: str
    as_of: datetime
    rows: list[dict[str, Any]]
    total: dict[str, Any]  # counts summed (no median: medians do not add up)


def totals(rows: Sequence[dict[str, Any]], counts: Sequence[str], first: str = "district"
           ) -> dict[str, Any]:
    """A totals row: ``first`` = "total", each count summed over ``rows``."""
    return {first: "total", **{c: sum(int(row.get(c) or 0) for row in rows) for c in counts}}


def report_days(connection: Connection, caller: Caller) -> list[tuple[date, int]]:
    """Every day with a daily report the caller can see, newest first, and its districts."""
    return queries.report_days(connection, caller.districts)


def daily(connection: Connection, caller: Caller, policy: Policy, day: date | None = None,
          districts: Sequence[str] = ()) -> DailyTable:
    """The daily closure of ``day`` (default the latest there is); NoReport if none."""
    if day is None:
        days = report_days(connection, caller)
        if not days:
            raise NoReport("no daily report in the ledger yet")
        day = days[0][0]
    cal = Calendar(policy.zone, policy.daily_cutoff)
    cutoff = datetime.fromtimestamp(cal.cutoff_at(day), policy.zone)
    rows = queries.daily_report(connection, day, cutoff, districts, caller.districts)
    if not rows:
        asked = day
        near = sorted((d for d, _ in report_days(connection, caller)),
                      key=lambda d: (abs((d - asked).days), d))[:3]
        raise NoReport(f"no daily report for {day} in the ledger"
                       + (f" for {', '.join(districts)}" if districts else "")
                       + (f"; it has, closest first: {', '.join(map(str, near))}" if near
                          else ""))
    return DailyTable(day, cutoff, rows, totals(rows, DAILY_SUMS))


def rounds(connection: Connection, caller: Caller) -> list[RoundSummary]:
    """Every testing round with a report in the ledger, by round_id."""
    found: dict[str, list[tuple[str, datetime]]] = {}
    for round_id, stage, as_of in queries.round_index(connection):
        found.setdefault(round_id, []).append((stage, as_of))
    return [RoundSummary(round_id, reports) for round_id, reports in sorted(found.items())]


def _describe(reports: list[tuple[str, datetime]], zone: Any) -> str:
    """A round's reports in a few words: 'progress ×5 (latest …), close …'."""
    parts = []
    for stage in STAGES:
        times = [as_of for s, as_of in reports if s == stage]
        if times:
            latest = max(times).astimezone(zone).isoformat()
            parts.append(f"{stage} ×{len(times)} (latest {latest})" if len(times) > 1
                         else f"{stage} {latest}")
    return ", ".join(parts)


def round_table(connection: Connection, caller: Caller, round_id: str, *,
                stage: str | None = None, as_of: int | None = None, zone: Any = None
                ) -> RoundTable:
    """One report of a round: ``stage`` and ``as_of`` (epoch seconds) pick it, else the
    latest (final, else close, else the latest progress). NoReport says what there is."""
    reports = queries.round_reports(connection, round_id)
    if not reports:
        raise NoReport(f"no report of round {round_id!r} in the ledger (is the round_id "
                       "right, and has the round opened? closedloop report round --list)")
    chosen = [(s, t) for s, t in reports if (stage is None or s == stage)
              and (as_of is None or int(t.timestamp()) == as_of)]
    if not chosen:
        wanted = stage or "report"
        if as_of is not None:
            wanted += " as of " + datetime.fromtimestamp(as_of, zone).isoformat()
        raise NoReport(f"round {round_id!r} has no {wanted} in the ledger; it has: "
                       f"{_describe(reports, zone)}")
    picked, when = max(chosen, key=lambda r: (_RANK[r[0]], r[1]))
    rows = queries.round_report(connection, round_id, picked, when, caller.districts)
    return RoundTable(round_id, picked, when, rows, totals(rows, ROUND_COUNTS))


def round_coverage(connection: Connection, caller: Caller, round_id: str
                   ) -> dict[str, list[tuple[datetime, str, float | None]]]:
    """How a round's coverage moved in each of the caller's districts: ``{district: [(as_of,
    stage, sampled / in_scope), …]}``, oldest first, one point per report (progress hourly
    while it is open, then close and final; None when nobody was in scope). Sampled counts
    those sampled while the round was open, so catch-ups are not in it."""
    series: dict[str, list[tuple[datetime, str, float | None]]] = {}
    for row in queries.round_series(connection, round_id, caller.districts):
        in_scope = int(row["in_scope"] or 0)
        share = int(row["sampled"] or 0) / in_scope if in_scope else None
        series.setdefault(row["district"], []).append((row["as_of"], row["stage"], share))
    return series
