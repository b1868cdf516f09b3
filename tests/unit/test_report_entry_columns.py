"""The daily report's data-entry columns (contract v1.2 §4), from the contributions a
data-entry stage sends the district's report: entries, entries_late, entry_lag_p90_minutes,
entries_rejected. Default policy: cut-off 22:00 Asia/Shanghai, entry_within sampling 2 h."""

from __future__ import annotations

from helpers import local as at

from closedloop.agents.calendar import Calendar
from closedloop.agents.closure import (
    HANDLERS,
    entry_contribution,
    handle_contribution,
    rejected_contribution,
)
from closedloop.agents.requirements import Context
from closedloop.agents.state import Contribution, ReportState
from closedloop.schemas.outputs import DailyReport
from closedloop.schemas.policy import default_policy

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
HOUR, MINUTE = 3600, 60


CUTOFF_6 = at("09-06 22:00")


def report(st: ReportState, cutoff: int, clock: int | None = None) -> DailyReport:
    ctx = Context(POLICY, CAL, cutoff if clock is None else clock)
    HANDLERS["report"](ctx, st, "xuhui", "report", cutoff)
    (made,) = ctx.out.reports
    return made


def contribute(st: ReportState, *items: Contribution) -> None:
    ctx = Context(POLICY, CAL, 0)
    for item in items:
        handle_contribution(ctx, st, "xuhui", item)


def test_records_in_the_window_count_late_by_their_topics_entry_within() -> None:
    st = ReportState()
    contribute(st, *(entry_contribution(POLICY, "xuhui", "sampling", at("09-06 09:00"), lag)
                     for lag in (10 * MINUTE, 2 * HOUR, 2 * HOUR + 1, 30 * MINUTE)))
    made = report(st, CUTOFF_6)
    # a lag of exactly entry_within is on time; p90 by nearest rank of 4 lags: the 4th
    assert (made.entries, made.entries_late, made.entry_lag_p90_minutes,
            made.entries_rejected) == (4, 1, 120.0, 0)
    assert st.lags is None  # the day's lags are forgotten once reported


def test_the_window_is_by_occurred_at_previous_cut_off_exclusive_this_one_inclusive() -> None:
    st = ReportState()
    contribute(st, entry_contribution(POLICY, "xuhui", "lab", CUTOFF_6, 60),
               entry_contribution(POLICY, "xuhui", "lab", CUTOFF_6 + 1, 60))
    assert report(st, CUTOFF_6).entries == 1
    assert report(st, at("09-07 22:00")).entries == 1


def test_a_day_without_lags_has_a_null_percentile() -> None:
    st = ReportState()
    contribute(st, rejected_contribution("xuhui", at("09-06 12:00")))
    made = report(st, CUTOFF_6)
    assert (made.entries, made.entry_lag_p90_minutes, made.entries_rejected) == (0, None, 1)


def test_a_rejection_counts_in_the_report_of_its_instant_or_the_first_not_yet_raised() -> None:
    st = ReportState()
    # at the cut-off: that day's report; a second after it: the next one
    contribute(st, rejected_contribution("xuhui", CUTOFF_6),
               rejected_contribution("xuhui", CUTOFF_6 + 1))
    assert report(st, CUTOFF_6).entries_rejected == 1
    # one whose instant lies in a day already reported counts in the first not yet raised
    contribute(st, rejected_contribution("xuhui", CUTOFF_6 - 3600, 2))
    assert report(st, at("09-07 22:00")).entries_rejected == 3


def test_an_entry_for_a_day_already_reported_counts_in_the_next() -> None:
    st = ReportState()
    contribute(st, entry_contribution(POLICY, "xuhui", "sampling", at("09-06 09:00"), 60))
    assert report(st, CUTOFF_6).entries == 1
    # a record of 09-06 read after that report: in 09-07's, as every late contribution
    contribute(st, entry_contribution(POLICY, "xuhui", "sampling", at("09-06 10:00"),
                                      13 * HOUR))
    made = report(st, at("09-07 22:00"))
    assert (made.entries, made.entries_late, made.entry_lag_p90_minutes) == (1, 1, 780.0)
