"""Arrival order within allowed lateness (CONTRACT.md §1): the clock is the watermark, and
satisfaction is judged by event time, so an event arriving up to 5 min "late" (after events
less than 5 min younger) must give the same alerts and reports as in time order."""

from __future__ import annotations

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
        alerts, *_ = run(events, until=at(located, hours=24, minutes=30))
        assert [k for k in keys_of(alerts) if k[:2] == ("followup_overdue", PERSON)] == []

    def test_a_sampling_at_23_58_arriving_after_00_02_still_counts_for_its_day(self) -> None:
        events = [
            travel(PERSON, T0, risk="inside_province"),
            travel("person-0002", at(DAY2, minutes=2)),
            sampling(PERSON, "tube-1", at(DAY2, minutes=-2)),
        ]
        alerts, *_ = run(events, until=at(DAY2, hours=1))
        assert [k for k in keys_of(alerts) if k[:2] == ("test_missed", PERSON)] == []

    def test_pool_members_and_report_in_any_order_give_the_same_output(self) -> None:
        swab_a = sampling("person-aaaa", "pool-1", T0, pool_size=10)
        swab_b = sampling("person-bbbb", "pool-1", at(T0, minutes=2), pool_size=10)
        report = lab("pool-1", at(T0, minutes=4), "positive")
        orders = [
            [swab_a, swab_b, report], [report, swab_b, swab_a], [swab_b, report, swab_a],
        ]
        outputs = {run_bytes(order, until=at(T0, days=1)).alerts for order in orders}
        assert len(outputs) == 1 and b"pool_positive" in outputs.pop()

    def test_a_cohort_leave_arriving_just_before_its_enrolment_still_ends_it(self) -> None:
        # given joined at 09:00 and left at 09:02, the leave arriving first (2 min "late"
        # for the join: within allowed lateness)
        joined = cohort(PERSON, T0, "cold_chain")
        left = cohort(PERSON, at(T0, minutes=2), "cold_chain", active=False)
        in_order, reversed_ = _both_orders(joined, left, at(T0, days=3))
        # then, as in time order, the membership is over and nothing is due
        assert in_order.alerts == b""
        assert reversed_.alerts == in_order.alerts

    def test_a_repeated_activation_keeps_the_earliest_enrolment_in_either_order(self) -> None:
        # given activations at 09:00 and 09:03 (documented: an activation while already
        # active keeps the enrolment, so the first test is due 09:00 tomorrow)
        first = cohort(PERSON, T0, "cold_chain")
        again = cohort(PERSON, at(T0, minutes=3), "cold_chain")
        in_order, reversed_ = _both_orders(first, again, at(T0, hours=24, minutes=3))
        assert b'"due_at":"2022-09-07T09:00:00+08:00"' in in_order.alerts
        assert reversed_.alerts == in_order.alerts

    def test_a_re_push_within_lateness_gives_the_same_alerts_in_either_order(self) -> None:
        push = travel(PERSON, T0, risk="high")
        corrected = travel(PERSON, at(T0, minutes=3), risk="inside_province")
        in_order, reversed_ = _both_orders(push, corrected, at(T0, days=8))
        assert in_order.alerts == reversed_.alerts

    def test_a_re_push_within_lateness_is_counted_the_same_in_either_order(self) -> None:
        # given a push at 09:00 and its correction at 09:03 for the same person
        push = travel(PERSON, T0, risk="high")
        corrected = travel(PERSON, at(T0, minutes=3), risk="high")
        in_order, reversed_ = _both_orders(push, corrected, at(T0, hours=13))
        # then the daily report counts the same pushes whatever the arrival order
        assert in_order.reports != b""
        assert reversed_.reports == in_order.reports
