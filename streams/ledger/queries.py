"""Reading the ledger for operators: open alerts, and the 日清日结 table with its backlog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, func, select

from closedloop.streams.ledger import models
from closedloop.streams.ledger.store import REPORT_COUNTS

__all__ = ["REPORT_COLUMNS", "daily_report", "list_alerts"]

REPORT_COLUMNS: Final = ("district", "date", *REPORT_COUNTS, "alerts_unresolved")

_ALERT: Final = models.Base.metadata.tables["alert"]
_REPORT: Final = models.Base.metadata.tables["daily_report"]


def list_alerts(
    connection: Connection,
    *,
    open_only: bool,
    districts: Sequence[str] = (),
    kinds: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Alerts (only those not resolved with ``open_only``), oldest due first."""
    query = select(_ALERT).order_by(_ALERT.c.due_at, _ALERT.c.alert_id)
    if open_only:
        query = query.where(_ALERT.c.state != "resolved")
    if districts:
        query = query.where(_ALERT.c.district.in_(districts))
    if kinds:
        query = query.where(_ALERT.c.kind.in_(kinds))
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
