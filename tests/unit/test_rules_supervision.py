"""Supervision (CONTRACT.md v1.2 §4): findings, rectification, look-back, repeat offenders, as
pure rules over one unit's state, at their edges.

Default policy: rectify_within critical 24 h, major 72 h, minor 168 h; recheck_within 168 h;
repeat_window 90 d; orphan_after 24 h. Every instant below is local (+08:00).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st_

from closedloop.agents import supervision
from closedloop.agents.calendar import Calendar
from closedloop.agents.raised import Raised
from closedloop.schemas.events import Inspection
from closedloop.schemas.outputs import UnitStatus
from closedloop.schemas.policy import default_policy

POLICY = default_policy()
HOUR, DAY = 3600, 86400
UNIT = "venue-7"
T0 = datetime.fromisoformat("2022-09-06T10:00:00+08:00")  # the first finding


def t(**offset: float) -> int:
    """Epoch seconds of T0 + the offset (``t(hours=24)``)."""
    return int((T0 + timedelta(**offset)).timestamp())


def record(kind: str, when: int, finding_id: str = "f1", **fields: Any) -> Inspection:
    value: dict[str, Any] = {
        "event_id": f"{kind}-{finding_id}-{when}",
        "occurred_at": datetime.fromtimestamp(when, T0.tzinfo).isoformat(),
        "unit_id": UNIT, "unit_kind": "venue", "district": "xuhui", "record": kind,
        "finding_id": finding_id}
    if kind == "finding":
        value |= {"category": "venue_code", "severity": "critical"}
    return msgspec.convert(value | fields, Inspection)


def finding(when: int, finding_id: str = "f1", **fields: Any) -> Inspection:
    return record("finding", when, finding_id, **fields)


def rectified(when: int, finding_id: str = "f1") -> Inspection:
    return record("rectified", when, finding_id)


def recheck(when: int, result: str, finding_id: str = "f1") -> Inspection:
    return record("recheck", when, finding_id, result=result)


def run(records: list[Inspection], until: int,
        st: supervision.UnitState | None = None) -> tuple[list[Raised], supervision.UnitState]:
    """Apply ``records`` in the order given, then fire every deadline up to ``until`` in turn
    (as a clock moving on would), collecting what is raised."""
    st = st or supervision.UnitState()
    due = None
    for item in records:
        due = supervision.on_inspection(POLICY, st, item, int(item.occurred_at.timestamp()))
    raised: list[Raised] = []
    while due is not None and due <= until:
        judged = supervision.fire(POLICY, st, UNIT, due)
        raised += judged.alerts
        due = judged.due
    return raised, st


def kinds(raised: list[Raised]) -> list[tuple[str, int]]:
    return [(alert.kind, alert.due) for alert in raised]


class TestRectification:
    def test_a_rectification_exactly_at_the_windows_end_is_in_time(self) -> None:
        # given a critical finding at T0 and its rectification at T0 + 24 h exactly
        raised, _ = run([finding(t()), rectified(t(hours=24))], until=t(hours=30))
        # then nothing is overdue
        assert raised == []

    def test_a_second_later_it_is_overdue_and_still_starts_the_look_back(self) -> None:
        raised, _ = run([finding(t()), rectified(t(hours=24, seconds=1))],
                        until=t(days=30))
        # then overdue at the window's end, and the look-back runs from the rectification
        assert kinds(raised) == [("rectification_overdue", t(hours=24)),
                                 ("recheck_missed", t(hours=24 + 168, seconds=1))]
        overdue = raised[0]
        assert (overdue.subject, overdue.district) == (UNIT, "xuhui")
        assert overdue.details == {"finding_id": "f1", "findings": ["f1"],
                                   "category": "venue_code", "severity": "critical",
                                   "unit_kind": "venue"}

    def test_the_window_follows_the_severity(self) -> None:
        raised, _ = run([finding(t(), severity="minor")], until=t(days=8))
        assert kinds(raised) == [("rectification_overdue", t(hours=168))]

    def test_findings_lapsing_at_one_instant_share_an_alert_and_count_each(self) -> None:
        records = [finding(t(), "f2"), finding(t(), "f1", category="roster")]
        st = supervision.UnitState()
        for item in records:
            supervision.on_inspection(POLICY, st, item, t())
        judged = supervision.fire(POLICY, st, UNIT, t(hours=24))
        (alert,) = judged.alerts
        assert alert.details["findings"] == ["f1", "f2"]
        assert alert.details["finding_id"] == "f1" and alert.details["category"] == "roster"
        assert [lapse.finding_id for lapse in judged.lapses] == ["f1", "f2"]

    def test_a_later_rectification_before_the_recheck_is_ignored_and_counted(self) -> None:
        raised, st = run([finding(t()), rectified(t(hours=2)), rectified(t(hours=30)),
                          recheck(t(hours=40), "pass")], until=t(days=30))
        assert raised == []
        assert supervision.counted(POLICY, st)["rectifications_ignored"] == 1


class TestLookBack:
    def test_a_recheck_exactly_at_the_end_of_the_look_back_is_in_time(self) -> None:
        records = [finding(t()), rectified(t(hours=2)), recheck(t(hours=170), "pass")]
        assert run(records, until=t(days=30))[0] == []

    def test_no_recheck_is_missed_at_the_end_of_the_window(self) -> None:
        raised, _ = run([finding(t()), rectified(t(hours=2))], until=t(days=30))
        assert kinds(raised) == [("recheck_missed", t(hours=170))]
        assert raised[0].details["finding_id"] == "f1"

    def test_a_recheck_that_fails_twice_opens_the_finding_twice(self) -> None:
        # given: rectified, recheck fails; rectified again, recheck fails again; never again
        records = [finding(t()), rectified(t(hours=2)), recheck(t(hours=10), "fail"),
                   rectified(t(hours=12)), recheck(t(hours=20), "fail")]
        raised, st = run(records, until=t(days=30))
        # then two recheck_failed at the rechecks, and the second opening lapses a day later
        assert kinds(raised) == [("recheck_failed", t(hours=10)),
                                 ("recheck_failed", t(hours=20)),
                                 ("rectification_overdue", t(hours=44))]
        assert supervision.is_open(POLICY, st.findings["f1"], t(days=30))

    def test_a_failed_recheck_opens_a_new_rectification_window(self) -> None:
        # rectified again at exactly the new window's end: in time; then it passes
        records = [finding(t()), rectified(t(hours=2)), recheck(t(hours=10), "fail"),
                   rectified(t(hours=34)), recheck(t(hours=40), "pass")]
        raised, st = run(records, until=t(days=30))
        assert kinds(raised) == [("recheck_failed", t(hours=10))]
        assert not supervision.is_open(POLICY, st.findings["f1"], t(days=30))
        assert supervision.is_open(POLICY, st.findings["f1"], t(hours=39))

    def test_a_pass_closes_the_finding_whatever_came_before(self) -> None:
        # never rectified, but found fixed at the recheck: nothing lapses after it
        assert run([finding(t()), recheck(t(hours=5), "pass")], until=t(days=30))[0] == []
        # overdue first, then a pass: the overdue stands, nothing more
        raised, _ = run([finding(t()), recheck(t(hours=30), "pass")], until=t(days=30))
        assert kinds(raised) == [("rectification_overdue", t(hours=24))]

    def test_a_late_recheck_still_counts(self) -> None:
        raised, _ = run([finding(t()), rectified(t(hours=2)), recheck(t(hours=200), "fail")],
                         until=t(days=30))
        assert kinds(raised) == [("recheck_missed", t(hours=170)),
                                 ("recheck_failed", t(hours=200)),
                                 ("rectification_overdue", t(hours=224))]


class TestRepeatOffender:
    def test_a_repeat_exactly_repeat_window_after_the_first_finding(self) -> None:
        # given a finding at T0 (closed) and another in its category 90 days later
        records = [finding(t()), recheck(t(hours=1), "pass"),
                   finding(t(days=90), "f2", severity="minor")]
        raised, _ = run(records, until=t(days=90, hours=1))
        (alert,) = raised
        assert (alert.kind, alert.due, alert.district) == (
            "repeat_offender", t(days=90), "xuhui")
        assert alert.details == {"finding_id": "f2", "category": "venue_code",
                                 "unit_kind": "venue", "findings_in_window": 2,
                                 "previous": ["f1"]}

    def test_a_second_more_is_outside_the_window(self) -> None:
        records = [finding(t()), recheck(t(hours=1), "pass"),
                   finding(t(days=90, seconds=1), "f2", severity="minor")]
        assert run(records, until=t(days=90, hours=1))[0] == []

    def test_another_category_is_no_repeat(self) -> None:
        records = [finding(t()), recheck(t(hours=1), "pass"),
                   finding(t(days=2), "f2", category="roster")]
        assert run(records, until=t(days=2, hours=1))[0] == []

    def test_the_window_holds_every_earlier_finding_of_the_category(self) -> None:
        records = [finding(t(), "f1"), recheck(t(hours=1), "pass", "f1"),
                   finding(t(days=1), "f3"), recheck(t(days=1, hours=1), "pass", "f3"),
                   finding(t(days=2), "f2")]
        raised, _ = run(records, until=t(days=2, hours=1))
        assert [a.details["previous"] for a in raised if a.kind == "repeat_offender"] == [
            ["f1"], ["f1", "f3"]]
        assert raised[-1].details["findings_in_window"] == 3


class TestEventTime:
    def test_records_in_reverse_order_within_the_lateness_make_the_same_alerts(self) -> None:
        records = [finding(t()), rectified(t(hours=2)), recheck(t(hours=10), "fail"),
                   finding(t(minutes=3), "f2", category="venue_code")]
        forward, _ = run(records, until=t(days=30))
        backward, _ = run(list(reversed(records)), until=t(days=30))
        assert forward == backward
        assert ("repeat_offender", t(minutes=3)) in kinds(forward)

    def test_a_duplicate_finding_id_is_ignored_and_counted(self) -> None:
        # the second to arrive is ignored, even with an earlier instant
        raised, st = run([finding(t()), finding(t(hours=-1), severity="minor")],
                         until=t(hours=25))
        assert kinds(raised) == [("rectification_overdue", t(hours=24))]
        assert st.findings["f1"].severity == "critical"
        assert supervision.counted(POLICY, st)["duplicate_findings"] == 1

    def test_a_record_before_its_finding_waits_for_it(self) -> None:
        # the rectification arrives first; its finding within orphan_after
        raised, _ = run([rectified(t(hours=2)), finding(t()), recheck(t(hours=3), "pass")],
                        until=t(days=30))
        assert raised == []

    def test_an_orphan_is_counted_when_its_time_is_up_and_raises_nothing(self) -> None:
        st = supervision.UnitState()
        due = supervision.on_inspection(POLICY, st, rectified(t()), t())
        assert due == t(hours=24)
        judged = supervision.fire(POLICY, st, UNIT, t(hours=24))
        assert judged.alerts == [] and judged.due is None
        assert supervision.counted(POLICY, st)["orphan_records"] == 1
        # a finding arriving after that starts from nothing
        raised, _ = run([finding(t(hours=25), severity="minor")], until=t(days=30), st=st)
        assert kinds(raised) == [("rectification_overdue", t(hours=25 + 168))]

    def test_each_lapse_is_raised_once_however_often_the_clock_fires(self) -> None:
        st = supervision.UnitState()
        supervision.on_inspection(POLICY, st, finding(t()), t())
        first = supervision.fire(POLICY, st, UNIT, t(hours=24))
        again = supervision.fire(POLICY, st, UNIT, t(hours=48))
        assert kinds(first.alerts) == [("rectification_overdue", t(hours=24))]
        assert again.alerts == [] and again.due is None

    def test_the_next_deadline_is_the_earliest_lapse(self) -> None:
        st = supervision.UnitState()
        assert supervision.on_inspection(POLICY, st, finding(t()), t()) == t(hours=24)
        assert supervision.on_inspection(POLICY, st, rectified(t(hours=1)), t(hours=1)) == t(
            hours=169)


class TestStateAndReport:
    def test_a_closed_finding_is_forgotten_repeat_window_after_its_last_record(self) -> None:
        st = supervision.UnitState()
        supervision.on_inspection(POLICY, st, finding(t()), t())
        supervision.on_inspection(POLICY, st, recheck(t(hours=1), "pass"), t(hours=1))
        supervision.fire(POLICY, st, UNIT, t(days=90, hours=1))
        assert "f1" in st.findings
        supervision.fire(POLICY, st, UNIT, t(days=90, hours=1, seconds=1))
        assert st.findings == {}

    def test_the_units_share_of_the_daily_report(self) -> None:
        records = [finding(t(), "f1"), finding(t(hours=1), "f2", category="roster",
                                               district="jingan"),
                   rectified(t(hours=2), "f2"), recheck(t(hours=3), "fail", "f2"),
                   finding(t(hours=4), "f3")]
        _, st = run(records, until=t())
        day = supervision.report_counts(POLICY, st, t(hours=-10), t(hours=12))
        assert dict(day["xuhui"]) == {"findings_new": 2, "findings_open": 2,
                                      "repeat_offenders": 1}
        assert dict(day["jingan"]) == {"findings_new": 1, "findings_open": 1,
                                       "rechecks_failed": 1}
        # f1 and f3 (critical) lapse at T0 + 24 h and + 28 h: two findings overdue
        next_day = supervision.report_counts(POLICY, st, t(hours=12), t(hours=36))
        assert dict(next_day["xuhui"]) == {"findings_new": 0, "findings_open": 2,
                                           "rectifications_overdue": 2}


class TestUnitStatus:
    CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)

    def test_a_unit_status_lists_each_finding_with_its_steps_in_event_time(self) -> None:
        # arrival order: the pass first, then the finding, then the failed recheck before it
        records = [recheck(t(hours=30), "pass", "f2"), finding(t(hours=2), "f2",
                                                               severity="minor"),
                   rectified(t(hours=3), "f2"), recheck(t(hours=5), "fail", "f2"),
                   finding(t(), "f1")]
        _, st = run(records, until=t())
        status = supervision.unit_status(POLICY, self.CAL, UNIT, st, t(hours=6))
        assert status.unit_id == UNIT and status.updated_at == "2022-09-06T16:00:00+08:00"
        assert [f.finding_id for f in status.findings] == ["f1", "f2"]
        f1, f2 = status.findings
        assert (f1.closed_at, f1.steps, f1.severity) == (None, [], "critical")
        assert (f2.severity, f2.found_at) == ("minor", "2022-09-06T12:00:00+08:00")
        assert [(s.record, s.at, s.result) for s in f2.steps] == [
            ("rectified", "2022-09-06T13:00:00+08:00", None),
            ("recheck", "2022-09-06T15:00:00+08:00", "fail"),
            ("recheck", "2022-09-07T16:00:00+08:00", "pass")]
        assert f2.closed_at == "2022-09-07T16:00:00+08:00"
        assert msgspec.json.decode(msgspec.json.encode(status), type=UnitStatus) == status

    def test_open_findings_count_by_district_and_severity_as_the_records_stand(self) -> None:
        records = [finding(t(), "f1"), finding(t(hours=1), "f2", district="jingan",
                                               severity="minor"),
                   finding(t(hours=2), "f3"), recheck(t(hours=3), "pass", "f3"),
                   finding(t(hours=4), "f4"), recheck(t(hours=5), "pass", "f4"),
                   recheck(t(hours=6), "fail", "f4")]
        _, st = run(records, until=t())
        assert supervision.open_findings(POLICY, st) == {
            ("xuhui", "critical"): 2, ("jingan", "minor"): 1}


class TestOpenSpans:
    def test_a_finding_is_open_until_a_pass_and_again_from_a_fail(self) -> None:
        _, st = run([finding(t()), rectified(t(hours=1)), recheck(t(hours=2), "fail"),
                     recheck(t(hours=3), "pass"), recheck(t(hours=4), "fail")], until=t())
        assert supervision.open_spans(st.findings["f1"]) == [
            (t(), t(hours=3)), (t(hours=4), None)]

    def test_a_pass_at_the_findings_instant_leaves_no_span(self) -> None:
        _, st = run([recheck(t(), "pass"), finding(t())], until=t())
        assert supervision.open_spans(st.findings["f1"]) == []

    @settings(max_examples=300, deadline=None)
    @given(steps=st_.lists(st_.tuples(st_.sampled_from(["rectified", "pass", "fail"]),
                                      st_.integers(-2, 8)), max_size=8))
    def test_the_spans_are_exactly_the_instants_is_open_says(
            self, steps: list[tuple[str, int]]) -> None:
        item = supervision.Finding(
            finding_id="f1", at=0, category="venue_code", severity="minor", unit_kind="venue",
            district="xuhui", steps=[
                supervision.Step("rectified", at) if kind == "rectified"
                else supervision.Step("recheck", at, kind) for kind, at in steps])
        spans = supervision.open_spans(item)
        for at in range(-3, 10):
            inside = any(start <= at and (end is None or at < end) for start, end in spans)
            assert inside == supervision.is_open(POLICY, item, at), (at, spans)

    def test_deltas_move_a_gauge_from_the_old_spans_to_the_new(self) -> None:
        # a pass recheck arrives late and closes at 5 what was counted open from 0
        assert supervision.span_deltas([(0, None)], [(0, 5)]) == [(5, -1)]
        assert supervision.span_deltas([], [(0, 5), (7, None)]) == [(0, 1), (5, -1), (7, 1)]
        assert supervision.span_deltas([(0, 5)], [(0, 5)]) == []
        assert supervision.span_deltas([(0, 5), (5, None)], [(0, None)]) == []


class TestReportEdges:
    """The daily report's supervision columns at the window's edges (start, end]."""

    def test_a_finding_and_a_lapse_exactly_at_the_cutoff_count_in_that_day(self) -> None:
        _, st = run([finding(t(), "f1"), finding(t(hours=12), "f2")], until=t())
        # f1 (critical) lapses at T0 + 24 h: a window ending exactly then counts it
        day = supervision.report_counts(POLICY, st, t(hours=0), t(hours=24))
        assert day["xuhui"]["rectifications_overdue"] == 1
        assert day["xuhui"]["findings_new"] == 1  # f2; f1 is at the window's open start
        before = supervision.report_counts(POLICY, st, t(hours=-1), t(hours=0))
        assert before["xuhui"]["findings_new"] == 1 and before["xuhui"][
            "rectifications_overdue"] == 0

    def test_a_pass_exactly_at_the_cutoff_closes_it_in_that_report(self) -> None:
        _, st = run([finding(t()), recheck(t(hours=10), "pass")], until=t())
        assert supervision.report_counts(POLICY, st, t(hours=-1), t(hours=10))[
            "xuhui"]["findings_open"] == 0
        assert supervision.report_counts(POLICY, st, t(hours=-1), t(hours=10, seconds=-1))[
            "xuhui"]["findings_open"] == 1

    def test_a_recheck_failing_twice_counts_twice_in_its_days(self) -> None:
        _, st = run([finding(t()), rectified(t(hours=1)), recheck(t(hours=2), "fail"),
                     rectified(t(hours=3)), recheck(t(days=1, hours=2), "fail")], until=t())
        assert supervision.report_counts(POLICY, st, t(hours=-1), t(hours=12))[
            "xuhui"]["rechecks_failed"] == 1
        assert supervision.report_counts(POLICY, st, t(hours=12), t(hours=36))[
            "xuhui"]["rechecks_failed"] == 1


def _report_by_parts(parts: list[supervision.Part], start: int, end: int
                     ) -> dict[str, dict[str, int]]:
    """What the report stage makes of the parts for the window (start, end]: counts in it,
    and the findings_open gauge summed up to its end."""
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        row = out.setdefault(part.district, {})
        if part.field == "findings_open":
            if part.at <= end:
                row[part.field] = row.get(part.field, 0) + part.d
        elif start < part.at <= end:
            row[part.field] = row.get(part.field, 0) + part.d
    return {district: {k: v for k, v in row.items() if v} for district, row in out.items()}


def _counted_run(records: list[Inspection], until: int, lateness: int = 300
                 ) -> tuple[supervision.UnitState, list[supervision.Part]]:
    """The stage's way: each record applied, then everything due at the watermark fired."""
    st = supervision.UnitState()
    parts: list[supervision.Part] = []
    clock = None
    for item in records:
        at = int(item.occurred_at.timestamp())
        parts += supervision.on_inspection_counted(POLICY, st, item, at)[1]
        clock = max(clock or at - lateness, at - lateness)
        parts += supervision.fire_counted(POLICY, st, UNIT, clock)[1]
    parts += supervision.fire_counted(POLICY, st, UNIT, until)[1]
    return st, parts


class TestReportParts:
    def test_the_parts_make_the_same_report_as_the_units_state(self) -> None:
        records = [finding(t(), "f1"), finding(t(hours=1), "f2", category="roster",
                                               district="jingan", severity="minor"),
                   rectified(t(hours=2), "f2"), recheck(t(hours=3), "fail", "f2"),
                   finding(t(hours=4), "f3"), recheck(t(hours=30), "pass", "f1"),
                   rectified(t(hours=40), "f2"), recheck(t(hours=50), "pass", "f2")]
        st, parts = _counted_run(records, until=t(days=5))
        for day in range(-1, 5):
            start, end = t(hours=12 + 24 * (day - 1)), t(hours=12 + 24 * day)
            expected = {district: {k: v for k, v in counts.items() if v}
                        for district, counts in supervision.report_counts(
                            POLICY, st, start, end).items()}
            got = _report_by_parts(parts, start, end)
            assert {d: c for d, c in got.items() if c} == {
                d: c for d, c in expected.items() if c}, day

    def test_a_pass_arriving_late_moves_the_gauge_back_at_its_own_instant(self) -> None:
        st = supervision.UnitState()
        _, first = supervision.on_inspection_counted(POLICY, st, finding(t()), t())
        _, late = supervision.on_inspection_counted(
            POLICY, st, recheck(t(hours=2), "pass"), t(hours=2))
        assert first == [supervision.Part("xuhui", t(), "findings_new", 1),
                         supervision.Part("xuhui", t(), "findings_open", 1)]
        assert late == [supervision.Part("xuhui", t(hours=2), "findings_open", -1)]
        # a duplicate finding changes nothing
        assert supervision.on_inspection_counted(POLICY, st, finding(t(hours=3)),
                                                 t(hours=3))[1] == []

    def test_a_finding_forgotten_while_open_leaves_the_gauge_when_forgotten(self) -> None:
        st, parts = _counted_run([finding(t(), severity="minor"), rectified(t(hours=1)),
                                  recheck(t(hours=2), "fail")], until=t(days=200))
        assert st.findings == {}
        opened = [p for p in parts if p.field == "findings_open"]
        assert sum(p.d for p in opened) == 0 and opened[-1].d == -1
        assert opened[-1].at > t(days=90)

    @settings(max_examples=150, deadline=None)
    @given(steps=st_.lists(st_.tuples(st_.sampled_from(["finding", "rectified", "pass",
                                                        "fail"]),
                                      st_.sampled_from(["f1", "f2", "f3"]),
                                      st_.integers(0, 24 * 12)), max_size=14))
    def test_any_story_in_time_order_reports_the_same_by_parts(
            self, steps: list[tuple[str, str, int]]) -> None:
        records = []
        for kind, finding_id, hours in sorted(steps, key=lambda s: s[2]):
            when = t(hours=hours)
            records.append(finding(when, finding_id, severity="critical") if kind == "finding"
                           else rectified(when, finding_id) if kind == "rectified"
                           else recheck(when, kind, finding_id))
        st, parts = _counted_run(records, until=t(days=30))
        for day in range(0, 30, 3):
            start, end = t(hours=24 * day), t(hours=24 * (day + 3))
            expected = {district: {k: v for k, v in counts.items() if v}
                        for district, counts in supervision.report_counts(
                            POLICY, st, start, end).items()}
            assert {d: c for d, c in _report_by_parts(parts, start, end).items() if c} == {
                d: c for d, c in expected.items() if c}, day


class TestForgetDue:
    def test_a_finding_is_forgotten_exactly_at_its_forget_due(self) -> None:
        _, st = run([finding(t()), recheck(t(hours=1), "pass"),
                     finding(t(days=10), "f2", category="roster")], until=t())
        due = supervision.forget_due(POLICY, st)
        assert due == t(days=90, hours=1, seconds=1)
        supervision.fire(POLICY, st, UNIT, due - 1)
        assert set(st.findings) == {"f1", "f2"}
        supervision.fire(POLICY, st, UNIT, due)
        assert set(st.findings) == {"f2"}
        assert supervision.forget_due(POLICY, st) == t(days=100, seconds=1)

    def test_a_finding_with_a_lapse_still_due_is_kept_until_it(self) -> None:
        # a city whose repeat_window is shorter than a minor finding's rectification window
        short = replace(POLICY, repeat_window=HOUR)
        st = supervision.UnitState()
        supervision.on_inspection(short, st, finding(t(), severity="minor"), t())
        assert supervision.forget_due(short, st) == t(hours=168)
        supervision.fire(short, st, UNIT, t(hours=168) - 1)
        assert "f1" in st.findings
        assert supervision.fire(short, st, UNIT, t(hours=168)).alerts  # the lapse, then gone
        assert st.findings == {}
