"""Daily closure (日清日结): a report per district at the daily cut-off (CONTRACT.md §4).

The loops *contribute* counts at event time (``Context.contribute``): a push, a located
record, a missed test, a positive; and the two gauges, persons under control and persons with
an open follow-up lapse, as +1/-1 at the instants an interval opens and closes. The report
stage, keyed by district, buckets contributions by report day, the window (previous cut-off,
this cut-off], and publishes one report per district when the clock passes each cut-off.
A contribution for a day already reported (later than allowed lateness) goes into the next.

*v1.2* data entry: a record of known entry lag naming a district contributes its lag once
(:func:`entry_contribution`, at its occurred_at), counted in ``entries`` and, when late, in
``entries_late``, its lag kept for the day's 90th percentile; a rejected input whose value
names a valid district contributes to ``entries_rejected`` at its own occurred_at when it
has a plausible one, else as it is read (:func:`rejected_contribution`; docs/RULES.md).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import msgspec

from closedloop.agents.entry import EntryTally, is_late
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    lapse_gc,
    open_req_by,
)
from closedloop.agents.state import Contribution, Interval, PersonState, ReportState, loops_of
from closedloop.schemas.outputs import DailyReport
from closedloop.schemas.policy import Policy

__all__ = ["HANDLERS", "EntryLags", "close_interval", "entry_contribution",
           "handle_contribution", "handle_entry_lags", "rejected_contribution",
           "set_interval"]

COUNTS: Final = ("pushed", "located", "tests_missed", "positives")
GAUGES: Final = ("under_control", "followup_overdue_open", "findings_open")


def set_interval(
    ctx: Context,
    st: PersonState,
    gauge: str,
    district: str | None,
    start: int | None,
    end: int | None,
) -> None:
    """Make the key count in ``gauge`` over [start, end), emitting only the difference.

    ``start=None`` removes the interval; ``end=None`` leaves it open.
    """
    loops = st.loops
    intervals = None if loops is None else loops.iv
    old = None if intervals is None else intervals.get(gauge)
    new = None if start is None or (end is not None and end <= start) else Interval(
        district, start, end)
    if old == new:
        return
    if old is not None:
        ctx.out.contribute(old.district, old.start, gauge, -1)
        if old.end is not None:
            ctx.out.contribute(old.district, old.end, gauge, +1)
    if new is not None:
        ctx.out.contribute(district, new.start, gauge, +1)
        if end is not None:
            ctx.out.contribute(district, end, gauge, -1)
        if intervals is None:
            loops_of(st).iv = intervals = {}
        intervals[gauge] = new
    elif intervals is not None and loops is not None:
        intervals.pop(gauge, None)
        if not intervals:
            loops.iv = None


def close_interval(ctx: Context, st: PersonState, gauge: str, at: int) -> None:
    """End the key's interval in ``gauge`` at ``at`` (if open later) and forget it for good."""
    loops = st.loops
    old = None if loops is None or loops.iv is None else loops.iv.get(gauge)
    if loops is None or old is None:
        return
    if old.end is None or old.end > at:
        set_interval(ctx, st, gauge, old.district, old.start, max(at, old.start))
    intervals = loops.iv
    if intervals is not None:
        intervals.pop(gauge, None)
        if not intervals:
            loops.iv = None


ENTRY: Final = "entry"  # a record entered on time; its ``d`` is its entry lag in seconds
ENTRY_LATE: Final = "entry_late"  # a record entered late; its ``d`` is its entry lag
REJECTED: Final = "entries_rejected"


def entry_contribution(policy: Policy, district: str, topic: str, occurred: int, lag: int
                       ) -> Contribution:
    """A record of known entry lag ``lag`` naming ``district``: one contribution that
    counts it (late or not) in the report whose window holds its occurred_at."""
    return Contribution(district, occurred, ENTRY_LATE if is_late(policy, topic, lag)
                        else ENTRY, lag)


def rejected_contribution(district: str, at: int, count: int = 1) -> Contribution:
    """``count`` rejected inputs naming ``district`` (agents/entry.py ``rejected_district``)
    that count at ``at``: their own instant (``rejected_instant``), or one second after the
    clock they were read at. They count as a late valid record does: in the report whose
    window holds ``at``, or when that one is raised already, the first not yet raised (a
    report is raised when the clock reaches its cut-off)."""
    return Contribution(district, at, REJECTED, count)


def handle_contribution(ctx: Context, st: ReportState, district: str, item: Contribution
                        ) -> None:
    """Add one contribution to its report day, and make sure that day's report is due."""
    day, bucket = _bucket(ctx, st, item.at)
    field = item.field
    if field in (ENTRY, ENTRY_LATE):
        _lags_of(st, day).append(item.d)
        if field == ENTRY_LATE:
            bucket[ENTRY_LATE] = bucket.get(ENTRY_LATE, 0) + 1
    else:
        bucket[field] = bucket.get(field, 0) + item.d


class EntryLags(msgspec.Struct, gc=False):
    """Entry contributions of one district whose instants share one report window, combined
    (what :func:`entry_contribution` makes, one record at a time): ``at`` is one of their
    instants, ``lags`` all their entry lags, ``late`` how many were late."""

    at: int
    lags: list[int]
    late: int


def handle_entry_lags(ctx: Context, st: ReportState, district: str, item: EntryLags) -> None:
    """Add combined entry contributions to their report day, as one by one (a day keeps a
    count and a multiset of lags)."""
    day, bucket = _bucket(ctx, st, item.at)
    _lags_of(st, day).extend(item.lags)
    if item.late:
        bucket[ENTRY_LATE] = bucket.get(ENTRY_LATE, 0) + item.late


def _bucket(ctx: Context, st: ReportState, at: int) -> tuple[str, dict[str, int]]:
    """The report day a contribution at ``at`` counts in (its window's, or the first not yet
    reported), and that day's counts; the day's report is made due."""
    day = ctx.cal.report_date(at)
    reported = st.reported
    if reported is not None and day.isoformat() <= reported:
        day = date.fromisoformat(reported) + timedelta(days=1)
    days = st.days
    if days is None:
        st.days = days = {}
    iso = day.isoformat()
    bucket = days.setdefault(iso, {})
    open_req_by(st, "report", ctx.cal.cutoff_at(day))  # an earlier day, arriving late
    return iso, bucket


def _lags_of(st: ReportState, day: str) -> list[int]:
    lags = st.lags
    if lags is None:
        st.lags = lags = {}
    return lags.setdefault(day, [])


def _lapse_report(ctx: Context, st: ReportState, district: str, name: str, due: int
                  ) -> int | None:
    """Publish the report of the day whose cut-off is ``due``; the next one is due tomorrow."""
    day = ctx.cal.date_of(due)
    bucket = {} if st.days is None else st.days.pop(day.isoformat(), {})
    if st.days is not None and not st.days:
        st.days = None
    lags = [] if st.lags is None else st.lags.pop(day.isoformat(), [])
    if st.lags is not None and not st.lags:
        st.lags = None
    entries = EntryTally(lags=lags, late=bucket.get(ENTRY_LATE, 0),
                         rejected=bucket.get(REJECTED, 0))
    gauges = st.gauges
    if gauges is None:
        st.gauges = gauges = {}
    for gauge in GAUGES:
        gauges[gauge] = gauges.get(gauge, 0) + bucket.get(gauge, 0)
    st.reported = day.isoformat()
    ctx.out.reports.append(
        DailyReport(
            district=district,
            date=day.isoformat(),
            pushed=bucket.get("pushed", 0),
            located=bucket.get("located", 0),
            under_control=gauges["under_control"],
            followup_overdue_open=gauges["followup_overdue_open"],
            tests_missed=bucket.get("tests_missed", 0),
            positives=bucket.get("positives", 0),
            **{name: bucket.get(name, 0) for name in ENTRY_COUNTS},
            **entries.columns(),
            findings_open=gauges["findings_open"],
            **{name: bucket.get(name, 0) for name in SUPERVISION_COUNTS},
        )
    )
    return ctx.cal.cutoff_at(day + timedelta(days=1))


ENTRY_COUNTS: Final = ("checkpoint_entries", "entries_without_proof", "landing_tests_missed",
                       "sentinel_visits", "sentinel_untested")
"""The v1.1 columns: counts in the district of the checkpoint or facility."""

SUPERVISION_COUNTS: Final = ("findings_new", "rectifications_overdue", "rechecks_failed",
                             "repeat_offenders")
"""The v1.2 supervision counts, in the finding's district (agents/units.py contributes
them, and the findings_open gauge)."""

HANDLERS: Final[dict[str, LapseHandler[ReportState]]] = {
    "report": _lapse_report,
    "gc": lapse_gc,
}
