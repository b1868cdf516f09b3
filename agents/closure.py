"""Daily closure (日清日结): a report per district at the daily cut-off (CONTRACT.md §4).

The loops *contribute* counts at event time (``Context.contribute``): a push, a located
record, a missed test, a positive; and the two gauges, persons under control and persons with
an open follow-up lapse, as +1/-1 at the instants an interval opens and closes. The report
stage, keyed by district, buckets contributions by report day, the window (previous cut-off,
this cut-off], and publishes one report per district when the clock passes each cut-off.
A contribution for a day already reported (later than allowed lateness) goes into the next.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

from closedloop.agents.requirements import Context, LapseHandler, State, lapse_gc, open_req
from closedloop.schemas.outputs import DailyReport

__all__ = ["HANDLERS", "close_interval", "handle_contribution", "set_interval"]

COUNTS: Final = ("pushed", "located", "tests_missed", "positives")
GAUGES: Final = ("under_control", "followup_overdue_open")


def set_interval(
    ctx: Context,
    st: State,
    gauge: str,
    district: str | None,
    start: int | None,
    end: int | None,
) -> None:
    """Make the key count in ``gauge`` over [start, end), emitting only the difference.

    ``start=None`` removes the interval; ``end=None`` leaves it open.
    """
    intervals = st.setdefault("iv", {})
    old = intervals.get(gauge)
    new = None if start is None or (end is not None and end <= start) else [district, start, end]
    if old == new:
        return
    if old is not None:
        ctx.contribute(old[0], old[1], gauge, -1)
        if old[2] is not None:
            ctx.contribute(old[0], old[2], gauge, +1)
    if new is not None:
        ctx.contribute(district, start, gauge, +1)  # type: ignore[arg-type]
        if end is not None:
            ctx.contribute(district, end, gauge, -1)
        intervals[gauge] = new
    else:
        intervals.pop(gauge, None)
        if not intervals:
            del st["iv"]


def close_interval(ctx: Context, st: State, gauge: str, at: int) -> None:
    """End the key's interval in ``gauge`` at ``at`` (if open later) and forget it for good."""
    old = st.get("iv", {}).get(gauge)
    if old is None:
        return
    if old[2] is None or old[2] > at:
        set_interval(ctx, st, gauge, old[0], old[1], max(at, old[1]))
    intervals = st.get("iv", {})
    intervals.pop(gauge, None)
    if not intervals:
        st.pop("iv", None)


def handle_contribution(ctx: Context, st: State, district: str, item: dict[str, Any]) -> None:
    """Add one contribution to its report day, and make sure that day's report is due."""
    day = ctx.cal.report_date(int(item["at"]))
    reported = st.get("reported")
    if reported is not None and day.isoformat() <= reported:
        day = date.fromisoformat(reported) + timedelta(days=1)
    bucket = st.setdefault("days", {}).setdefault(day.isoformat(), {})
    bucket[item["field"]] = bucket.get(item["field"], 0) + int(item["d"])
    cutoff = ctx.cal.cutoff_at(day)
    pending = st.get("req", {}).get("report")
    if pending is None or cutoff < pending:
        open_req(st, "report", cutoff)  # an earlier day, arriving late but in time


def _lapse_report(ctx: Context, st: State, district: str, name: str, due: int) -> int | None:
    """Publish the report of the day whose cut-off is ``due``; the next one is due tomorrow."""
    day = ctx.cal.date_of(due)
    bucket = st.get("days", {}).pop(day.isoformat(), {})
    gauges = st.setdefault("gauges", {})
    for gauge in GAUGES:
        gauges[gauge] = gauges.get(gauge, 0) + bucket.get(gauge, 0)
    st["reported"] = day.isoformat()
    ctx.reports.append(
        DailyReport(
            district=district,
            date=day.isoformat(),
            pushed=bucket.get("pushed", 0),
            located=bucket.get("located", 0),
            under_control=gauges["under_control"],
            followup_overdue_open=gauges["followup_overdue_open"],
            tests_missed=bucket.get("tests_missed", 0),
            positives=bucket.get("positives", 0),
        )
    )
    return ctx.cal.cutoff_at(day + timedelta(days=1))


HANDLERS: Final[dict[str, LapseHandler]] = {"report": _lapse_report, "gc": lapse_gc}
