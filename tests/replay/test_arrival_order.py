"""Arrival order within allowed lateness (CONTRACT.md §1): the clock is the watermark, and
satisfaction is judged by event time, so an event arriving up to 5 min "late" (after events
less than 5 min younger) must give the same alerts and reports as in time order."""

from __future__ import annotations

import json
from typing import Any

from helpers import DAY2, T0, at, cohort, followup, keys_of, lab, run, run_bytes, sampling, travel

PERSON = "person-0001"


def _both_orders(
    first: dict[str, Any], second: dict[str, Any], until: str, *context: dict[str, Any]
) -> tuple[Any, Any]:
    """Replay ``context`` then (first, second), and ``context`` then (second, first)."""
    return (
        run_bytes([*context, first, second], until=until),
        run_bytes([*context, second, first], until=until),
    )


class TestArrivalOrderWithinLateness:
    def test_a_visit_arriving_late_within_lateness_still_clears(self) -> None:
        # given located 09:30; a visit at 09:29 the next day arrives after a 09:33 event
        located = at(T0, minutes=30)
        events = [
            travel(PERSON, T0),
            followup(PERSON, located, "located"),
            travel("person-0002", at(located, hours=24, minutes=3)),
            followup(PERSON, at(located, hours=24, minutes=-1), "visit"),
        ]
        # when the clock passes 10:00 the next day
        alerts, *_ = run(events, until=at(located, hours=24, minutes=30))
        # then no follow-up lapse for the person
        assert [k for k in keys_of(alerts) if k[:2] == ("followup_overdue", PERSON)] == []

    def test_a_sampling_at_23_58_arriving_after_00_02_still_counts_for_its_day(self) -> None:
        # given inside_province from 09-06; an event at 00:02 on 09-07, then a swab at
        # 23:58 on 09-06
        events = [
            travel(PERSON, T0, risk="inside_province"),
            travel("person-0002", at(DAY2, minutes=2)),
            sampling(PERSON, "tube-1", at(DAY2, minutes=-2)),
        ]
        # when the clock passes 00:00
        alerts, *_ = run(events, until=at(DAY2, hours=1))
        # then day 1 was satisfied
        assert [k for k in keys_of(alerts) if k[:2] == ("test_missed", PERSON)] == []

    def test_pool_members_and_report_in_any_order_give_the_same_output(self) -> None:
        # given two pool members (09:00, 09:02) and a positive report at 09:04
        swab_a = sampling("person-aaaa", "pool-1", T0, pool_size=10)
        swab_b = sampling("person-bbbb", "pool-1", at(T0, minutes=2), pool_size=10)
        report = lab("pool-1", at(T0, minutes=4), "positive")
        orders = [
            [swab_a, swab_b, report], [report, swab_b, swab_a], [swab_b, report, swab_a],
        ]
        # when replayed in three arrival orders
        outputs = {run_bytes(order, until=at(T0, days=1)).alerts for order in orders}
        # then the same bytes, with the pool_positive
        assert len(outputs) == 1 and b"pool_positive" in outputs.pop()

    def test_a_cohort_leave_arriving_just_before_its_enrolment_still_ends_it(self) -> None:
        # given joined at 09:00 and left at 09:02, the leave arriving first (2 min "late"
        # for the join: within allowed lateness)
        joined = cohort(PERSON, T0, "cold_chain")
        left = cohort(PERSON, at(T0, minutes=2), "cold_chain", active=False)
        # when both orders are replayed for three days
        in_order, reversed_ = _both_orders(joined, left, at(T0, days=3))
        # then, as in time order, the membership is over and nothing is due
        assert in_order.alerts == b""
        assert reversed_.alerts == in_order.alerts

    def test_a_repeated_activation_keeps_the_earliest_enrolment_in_either_order(self) -> None:
        # given activations at 09:00 and 09:03 (documented: an activation while already
        # active keeps the enrolment, so the first test is due 09:00 tomorrow)
        first = cohort(PERSON, T0, "cold_chain")
        again = cohort(PERSON, at(T0, minutes=3), "cold_chain")
        # when both orders are replayed to 09:03 the next day
        in_order, reversed_ = _both_orders(first, again, at(T0, hours=24, minutes=3))
        # then a lapse at 09:00 tomorrow, in both orders
        assert b'"due_at":"2022-09-07T09:00:00+08:00"' in in_order.alerts
        assert reversed_.alerts == in_order.alerts

    def test_a_re_push_within_lateness_gives_the_same_alerts_in_either_order(self) -> None:
        # given a push at 09:00 (high) and its correction at 09:03 (inside_province)
        push = travel(PERSON, T0, risk="high")
        corrected = travel(PERSON, at(T0, minutes=3), risk="inside_province")
        # when replayed in both orders
        in_order, reversed_ = _both_orders(push, corrected, at(T0, days=8))
        # then the same alerts
        assert in_order.alerts == reversed_.alerts

    def test_a_re_push_within_lateness_is_counted_the_same_in_either_order(self) -> None:
        # given a push at 09:00 and its correction at 09:03 for the same person
        push = travel(PERSON, T0, risk="high")
        corrected = travel(PERSON, at(T0, minutes=3), risk="high")
        # when both orders are replayed past 22:00
        in_order, reversed_ = _both_orders(push, corrected, at(T0, hours=13))
        # then the daily report counts the same pushes whatever the arrival order
        assert in_order.reports != b""
        assert reversed_.reports == in_order.reports

    def test_a_lab_record_after_the_sla_deadline_gives_the_same_breach_in_either_order(
        self,
    ) -> None:
        # given a swab at 09:00 (received due 13:00, reported due 21:00), and at 23:00 both
        # the lab's (late) report and another person's push, in either arrival order
        swab = sampling("person-aaaa", "tube-1", T0)
        report = lab("tube-1", at(T0, hours=14), "negative")
        other = travel("person-bbbb", at(T0, hours=14))
        # when both orders are replayed to 09:00 the next day
        in_order, reversed_ = _both_orders(report, other, at(T0, days=1), swab)
        # then the two lab_sla_breached alerts are the same bytes
        assert in_order.alerts.count(b"lab_sla_breached") == 2
        assert reversed_.alerts == in_order.alerts

    def test_a_push_finding_an_older_located_record_reports_the_same_in_either_order(
        self,
    ) -> None:
        # given a push on 09-06 (so 09-06 has a report), D located 09-06 09:00 after
        # arriving 03:00, and on 09-07 another push at 09:00:00 and D's push at 09:00:01
        # (it finds the older located record), the two arriving in either order
        context = [
            travel("person-aaaa", T0),
            followup("person-dddd", T0, "located"),
        ]
        other = travel("person-eeee", at(T0, days=1))
        push = travel("person-dddd", at(T0, days=1, seconds=1), arrived=at(T0, hours=-6))
        # when replayed past 22:00 on 09-07
        in_order, reversed_ = _both_orders(other, push, at(T0, days=1, hours=14), *context)
        # then the daily reports are the same
        assert in_order.reports.count(b"\n") == 2
        assert reversed_.reports == in_order.reports

    def test_a_re_push_to_another_district_counts_located_the_same_in_either_order(
        self,
    ) -> None:
        # given arrival at 08:00, a push at 09:00:00 in district-a, the located record at
        # 09:00:00, and the push corrected at 09:00:01 to district-b, the record and the
        # correction arriving in either order
        arrived = at(T0, hours=-1)
        push = travel(PERSON, T0, district="district-a", arrived=arrived)
        located = followup(PERSON, T0, "located")
        corrected = travel(PERSON, at(T0, seconds=1), district="district-b", arrived=arrived)
        # when replayed past 22:00
        in_order, reversed_ = _both_orders(located, corrected, at(T0, hours=14), push)
        # then each district's report is the same
        assert in_order.reports.count(b"\n") == 2
        assert sorted(reversed_.reports.splitlines()) == sorted(in_order.reports.splitlines())

    def test_two_located_records_arriving_out_of_order_count_one_located_person(
        self,
    ) -> None:
        # given a push at 09:00 and two located records, 09:05:00 and 09:05:01, arriving
        # in either order
        push = travel(PERSON, T0)
        first = followup(PERSON, at(T0, minutes=5), "located")
        second = followup(PERSON, at(T0, minutes=5, seconds=1), "located")
        # when replayed past 22:00
        in_order, reversed_ = _both_orders(first, second, at(T0, hours=14), push)
        # then the day's report counts one located person, whatever the order
        assert b'"located":1,' in in_order.reports
        assert reversed_.reports == in_order.reports

    def test_a_re_push_with_another_arrival_counts_located_the_same_in_either_order(
        self,
    ) -> None:
        # given a push at 09:00:00 (arrived 09:00), the located record at 09:00:00, and a
        # second push at 09:00:01 giving another arrival (08:00) that the record also
        # satisfies, the record and the second push arriving in either order
        push = travel(PERSON, T0)
        located = followup(PERSON, T0, "located")
        second = travel(PERSON, at(T0, seconds=1), arrived=at(T0, hours=-1))
        # when replayed past 22:00
        in_order, reversed_ = _both_orders(located, second, at(T0, hours=14), push)
        # then the day's report is the same
        assert in_order.reports.count(b"\n") == 1
        assert reversed_.reports == in_order.reports

    def test_a_cohort_lapse_names_the_district_of_its_due_instant_in_either_order(
        self,
    ) -> None:
        # given cold_chain enrolled 09:00 in district-b (test due 09:00 tomorrow); at 09:05
        # tomorrow the roster moves the person to district-a, and another person's push
        # comes at the same instant, the two arriving in either order
        enrolled = cohort(PERSON, T0, "cold_chain", district="district-b")
        moved = cohort(PERSON, at(T0, hours=24, minutes=5), "cold_chain", district="district-a")
        other = travel("person-0003", at(T0, hours=24, minutes=5))
        # when replayed to 10:00 tomorrow
        in_order, reversed_ = _both_orders(other, moved, at(T0, hours=25), enrolled)
        # then the lapse due at 09:00 is the same alert in both orders
        assert in_order.alerts.count(b'"requirement":"cohort:cold_chain"') == 1
        assert reversed_.alerts == in_order.alerts

    def test_a_re_push_after_a_deadline_does_not_cancel_its_lapse_in_either_order(
        self,
    ) -> None:
        # given a push at 09:00 never located (unlocated due 11:00), a re-push at 11:04
        # and another person's push at 11:05, the last two arriving in either order
        push = travel(PERSON, T0)
        again = travel(PERSON, at(T0, hours=2, minutes=4))
        other = travel("person-0003", at(T0, hours=2, minutes=5))
        # when replayed to 14:00
        in_order, reversed_ = _both_orders(again, other, at(T0, hours=5), push)
        # then in both orders the 11:00 lapse happened (the re-push came after it), and
        # the re-push's own deadline at 13:04 too
        mine = [
            (a["kind"], a["due_at"]) for a in map(json.loads, in_order.alerts.splitlines())
            if a["subject"] == PERSON
        ]
        assert mine == [("unlocated", at(T0, hours=2)), ("unlocated", at(T0, hours=4, minutes=4))]
        assert reversed_.alerts == in_order.alerts

    def test_two_re_pushes_after_a_deadline_keep_its_lapse_however_late_it_fires(
        self,
    ) -> None:
        # given a push at 09:00 never located (unlocated due 11:00), then re-pushes at 11:01
        # and 11:02, both after that deadline
        push = travel(PERSON, T0)
        again = travel(PERSON, at(T0, hours=2, minutes=1))
        third = travel(PERSON, at(T0, hours=2, minutes=2))
        other = travel("person-0003", at(T0, hours=2, minutes=6))
        until = at(T0, hours=5)
        # when the 11:00 lapse fires after both re-pushes were applied, or before them
        # (another person's push at 11:06 moved the clock first)
        late = run_bytes([push, again, third, other], until=until)
        early = run_bytes([push, other, again, third], until=until)
        # then both raise the 11:00 lapse and the last push's at 13:02, the same bytes
        mine = [
            [a for a in map(json.loads, out.alerts.splitlines()) if a["subject"] == PERSON]
            for out in (late, early)
        ]
        assert mine[0] == mine[1]
        assert [(a["kind"], a["due_at"]) for a in mine[0]] == [
            ("unlocated", at(T0, hours=2)), ("unlocated", at(T0, hours=4, minutes=2))
        ]
