"""Daily closure (日清日结, CONTRACT.md §4): a report per district at 22:00 local."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import DAY1, T0, at, followup, lab, run, sampling, travel

CUTOFF = at(DAY1, hours=22)  # 22:00 local on 2022-09-06
REPORT_FIELDS = {
    "district", "date", "pushed", "located", "under_control", "followup_overdue_open",
    "tests_missed", "positives", "checkpoint_entries", "entries_without_proof",
    "landing_tests_missed", "sentinel_visits", "sentinel_untested",
    # v1.2: written (0, null) until the engine counts them
    "entries", "entries_late", "entry_lag_p90_minutes", "entries_rejected", "findings_new",
    "findings_open", "rectifications_overdue", "rechecks_failed", "repeat_offenders",
}


def _by_date(reports: list[dict[str, Any]], district: str) -> dict[str, dict[str, Any]]:
    return {r["date"]: r for r in reports if r["district"] == district}


def _counts(report: dict[str, Any]) -> tuple[int, ...]:
    names = ("pushed", "located", "under_control", "followup_overdue_open", "tests_missed",
             "positives")
    return tuple(report[name] for name in names)


class TestDailyReport:
    def _city(self) -> list[dict[str, Any]]:
        # district-a, all inside_province (3 days, tests on days 1 and 3), arrived at push:
        # A pushed 09:00, located 09:30, swabbed 10:00 (negative);
        # B pushed 10:00, never located, never swabbed;
        # C pushed 11:00, located 11:30, swabbed 12:00 in a single tube, positive at 14:00.
        # district-b: D pushed 12:00 and located 12:10, swabbed 12:30.
        return [
            travel("person-aaaa", T0, risk="inside_province"),
            followup("person-aaaa", at(T0, minutes=30), "located"),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1)),
            travel("person-bbbb", at(T0, hours=1), risk="inside_province"),
            travel("person-cccc", at(T0, hours=2), risk="inside_province"),
            followup("person-cccc", at(T0, hours=2, minutes=30), "located"),
            sampling("person-cccc", "tube-c1", at(T0, hours=3)),
            lab("tube-a1", at(T0, hours=3, minutes=30), "negative"),
            travel("person-dddd", at(T0, hours=3), risk="inside_province",
                   district="district-b"),
            followup("person-dddd", at(T0, hours=3, minutes=10), "located"),
            sampling("person-dddd", "tube-d1", at(T0, hours=3, minutes=30),
                     district="district-b"),
            lab("tube-c1", at(T0, hours=5), "positive"),
            lab("tube-d1", at(T0, hours=5), "negative"),
        ]

    def test_reports_count_the_day_per_district(self) -> None:
        # given the small city of _city
        # when the clock passes 22:00 on 09-06 .. 09-09
        _, reports, _, _ = run(self._city(), until=at(CUTOFF, days=3))
        # then one report per district and day, with every documented field
        assert all(set(r) == REPORT_FIELDS for r in reports)
        a = _by_date(reports, "district-a")
        assert sorted(a) == ["2022-09-06", "2022-09-07", "2022-09-08", "2022-09-09"]
        # (pushed, located, under_control, followup_overdue_open, tests_missed, positives)
        # 09-06: 3 pushed, A and C located and under control, C positive
        assert _counts(a["2022-09-06"]) == (3, 2, 2, 0, 0, 1)
        # 09-07: B missed day 1 (due 09-07 00:00); A and C overdue since 09:30 / 11:30
        assert _counts(a["2022-09-07"]) == (0, 0, 2, 2, 1, 0)
        # 09-08: no test day, the follow-up lapses still open
        assert _counts(a["2022-09-08"]) == (0, 0, 2, 2, 0, 0)
        # 09-09: the regimens ended at 00:00; A, B and C all missed day 3
        assert _counts(a["2022-09-09"]) == (0, 0, 0, 0, 3, 0)
        b = _by_date(reports, "district-b")
        assert _counts(b["2022-09-06"]) == (1, 1, 1, 0, 0, 0)

    def test_report_fires_at_22_00_not_one_second_before(self) -> None:
        # given the small city of _city
        # when the clock stops at 21:59:59, then at 22:00:00
        _, before, _, _ = run(self._city(), until=at(CUTOFF, seconds=-1))
        _, on_time, _, _ = run(self._city(), until=CUTOFF)
        # then the day's reports appear at the cut-off
        assert before == []
        assert sorted((r["district"], r["date"]) for r in on_time) == [
            ("district-a", "2022-09-06"), ("district-b", "2022-09-06"),
        ]

    def test_an_event_at_exactly_22_00_counts_for_that_day(self) -> None:
        # given a push at 22:00:00 and another at 22:00:01
        events = [
            travel("person-eeee", CUTOFF, risk="inside_province"),
            travel("person-ffff", at(CUTOFF, seconds=1), risk="inside_province"),
        ]
        # when the clock passes 22:00 the next day
        _, reports, _, _ = run(events, until=at(CUTOFF, days=1))
        a = _by_date(reports, "district-a")
        # then the first is in 09-06's report, the second in 09-07's
        assert (a["2022-09-06"]["pushed"], a["2022-09-07"]["pushed"]) == (1, 1)

    def test_a_release_ends_under_control(self) -> None:
        # given located 09:10 on 09-06, released 10:00 on 09-07
        events = [
            travel("person-gggg", T0, risk="high"),
            followup("person-gggg", at(T0, minutes=10), "located"),
            followup("person-gggg", at(T0, days=1, hours=1), "released"),
        ]
        # when the clock passes 22:00 on 09-07
        _, reports, _, _ = run(events, until=at(CUTOFF, days=1))
        a = _by_date(reports, "district-a")
        # then under control on 09-06 only
        assert (a["2022-09-06"]["under_control"], a["2022-09-07"]["under_control"]) == (1, 0)

    def test_an_earlier_days_event_arriving_one_second_late_still_gets_its_report(
        self,
    ) -> None:
        # given a district's first events: a push at 22:00:01 (next day's window), then,
        # one second "late", a push at 22:00:00 (this day's window)
        events = [
            travel("person-xxxx", at(CUTOFF, seconds=1)),
            travel("person-yyyy", CUTOFF),
        ]
        # when the clock passes 22:00 on 09-06 and 09-07
        _, reports, _, _ = run(events, until=at(CUTOFF, days=1))
        # then, as in time order, 09-06's report counts its push and 09-07's the other
        a = _by_date(reports, "district-a")
        assert sorted(a) == ["2022-09-06", "2022-09-07"]
        assert (a["2022-09-06"]["pushed"], a["2022-09-07"]["pushed"]) == (1, 1)


class TestLaggingClock:
    """A report must not depend on how far the clock lagged when a lapse fired."""

    @pytest.mark.parametrize("correction", [False, True])
    def test_a_lapse_before_a_re_push_counts_as_open_however_late_it_fires(
        self, correction: bool
    ) -> None:
        # given a push at 21:00 day 1, located 21:30 (follow-up due 21:30 day 2), and a new
        # journey (or a correction of the same arrival) pushed at 22:01 day 2, after that
        # lapse and after the 22:00 cut-off
        day2 = at(DAY1, days=1)
        pushed = at(DAY1, hours=21)
        events = [
            travel("person-aaaa", pushed),
            followup("person-aaaa", at(DAY1, hours=21, minutes=30), "located"),
        ]
        again = travel("person-aaaa", at(day2, hours=22, minutes=1),
                       arrived=pushed if correction else None)
        other = travel("person-zzzz", at(day2, hours=21, minutes=36), district="district-z")
        until = at(day2, days=2)
        # when the lapse fires after the new push was applied, or before it (another
        # district's push at 21:36 moved the clock first)
        _, late, *_ = run([*events, again], until=until)
        _, early, *_ = run([*events, other, again], until=until)
        # then day 2's report counts the person's open follow-up lapse in both, and every
        # day's gauge is the same
        late_a, early_a = (
            {day: r["followup_overdue_open"] for day, r in _by_date(out, "district-a").items()}
            for out in (late, early)
        )
        assert late_a == early_a
        assert late_a[day2[:10]] == 1
