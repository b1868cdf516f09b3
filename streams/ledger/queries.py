"""Reading the ledger for operators: open alerts, the 日清日结 table with its backlog, and
testing rounds' reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, func, select

from closedloop.streams.ledger import models
from closedloop.streams.ledger.store import NO_ROWS, REPORT_COUNTS, ROUND_COUNTS

__all__ = [
    "REPORT_COLUMNS",
    "ROUND_COLUMNS",
    "ROUND_FIELDS",
    "STAGES",
    "daily_report",
    "last_samplings",
    "list_alerts",
    "round_report",
    "round_reports",
]

REPORT_COLUMNS: Final = ("district", "date", *REPORT_COUNTS, "alerts_unresolved")
ROUND_COLUMNS: Final = ("district", *ROUND_COUNTS)
STAGES: Final = ("progress", "close", "final")

_ALERT: Final = models.Base.metadata.tables["alert"]
_REPORT: Final = models.Base.metadata.tables["daily_report"]
_ROUND: Final = models.Base.metadata.tables["round_report"]
ROUND_FIELDS: Final = tuple(column.name for column in _ROUND.columns)
"""Every field of a round report's row (its csv header, rows or none)."""
_PERSON: Final = models.Base.metadata.tables["person_state"]


def list_alerts(
    connection: Connection,
    *,
    open_only: bool,
    districts: Sequence[str] = (),
    kinds: Sequence[str] = (),
    rounds: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Alerts (only those not resolved with ``open_only``), oldest due first.

    With ``rounds``, only ``round_missed`` alerts whose ``details.rounds`` holds one of them
    (one alert covers every round closing at its instant). That test runs here, on the rows
    of kind ``round_missed``, so it reads JSON the same way on PostgreSQL and SQLite.
    """
    query = select(_ALERT).order_by(_ALERT.c.due_at, _ALERT.c.alert_id)
    if open_only:
        query = query.where(_ALERT.c.state != "resolved")
    if districts:
        query = query.where(_ALERT.c.district.in_(districts))
    if kinds:
        query = query.where(_ALERT.c.kind.in_(kinds))
    if rounds:
        query = query.where(_ALERT.c.kind == "round_missed")
    rows = [dict(row) for row in connection.execute(query).mappings()]
    if rounds:
        wanted = set(rounds)
        rows = [row for row in rows
                if wanted.intersection((row["details"] or {}).get("rounds") or ())]
    return rows


def last_samplings(connection: Connection, person_ids: Sequence[str]) -> dict[str, datetime]:
    """Each person's latest sampling as their state in the ledger says (``last_sampled_at`` of
    ``person-status``); persons with none, or no state, are left out."""
    found: dict[str, datetime] = {}
    wanted = sorted(set(person_ids))
    for at in range(0, len(wanted), 500):  # bounded IN lists (SQLite limits parameters)
        rows = connection.execute(select(_PERSON.c.person_id, _PERSON.c.status).where(
            _PERSON.c.person_id.in_(wanted[at:at + 500])))
        for person_id, status in rows:
            text = (status or {}).get("last_sampled_at")
            if text:
                found[person_id] = datetime.fromisoformat(text)
    return found


def round_reports(connection: Connection, round_id: str) -> list[tuple[str, datetime]]:
    """The (stage, as_of) of every report of ``round_id`` in the ledger, oldest first."""
    query = (select(_ROUND.c.stage, _ROUND.c.as_of).where(_ROUND.c.round_id == round_id)
             .distinct().order_by(_ROUND.c.as_of, _ROUND.c.stage))
    return [(stage, as_of) for stage, as_of in connection.execute(query)]


def round_report(
    connection: Connection, round_id: str, stage: str, as_of: datetime
) -> list[dict[str, Any]]:
    """One report's district rows, by district (a report stored without rows gives [])."""
    query = (select(_ROUND)
             .where(_ROUND.c.round_id == round_id, _ROUND.c.stage == stage,
                    _ROUND.c.as_of == as_of, _ROUND.c.district != NO_ROWS)
             .order_by(_ROUND.c.district))
    return [dict(row) for row in connection.execute(query).mappings()]


def daily_report(
    connection: Connection, day: date, cutoff: datetime, districts: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Each district's report for ``day``, by district, with ``alerts_unresolved``.

    ``alerts_unresolved`` is read now from the alert table: the district's alerts raised by
    the day's cut-off that no operator has resolved yet — the backlog the closure meeting
    has to clear, which the engine's report (fixed at the cut-off) cannot know.
    """
    query = select(_REPORT).where(_REPORT.c.date == day).order_by(_REPORT.c.district)
    if districts:
        query = query.where(_REPORT.c.district.in_(districts))
    rows = [dict(row) for row in connection.execute(query).mappings()]
    backlog = connection.execute(
        select(_ALERT.c.district, func.count())
        .where(
            _ALERT.c.state != "resolved",
            _ALERT.c.raised_at <= cutoff,
            _ALERT.c.district.in_([row["district"] for row in rows]),
        )
        .group_by(_ALERT.c.district)
    )
    unresolved = {district: int(count) for district, count in backlog}
    for row in rows:
        row["alerts_unresolved"] = unresolved.get(row["district"], 0)
    return rows
