"""Travel push (CONTRACT.md §4): unlocated, followup_overdue and the regimen's test_missed."""

from __future__ import annotations

import pytest
from helpers import DAY1, DAY2, DAY3, T0, alerts_of, at, followup, run, sampling, travel

PERSON = "traveller-01"


def _dues(alerts: list[dict[str, object]], kind: str) -> list[object]:
    return [alert["due_at"] for alert in alerts_of(alerts, kind)]


class TestUnlocated:
    """No ``followup.located`` within 2 h of the push -> ``unlocated`` due push + 2 h."""

    def test_located_exactly_at_push_plus_2h_is_in_time(self) -> None:
        # given a push at 09:00 and the located record at 11:00:00 (= push + 2 h)
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=2), "located")]
        # when the clock passes the deadline
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then nothing is unlocated
        assert alerts_of(alerts, "unlocated") == []

    def test_located_one_second_before_the_deadline_is_in_time(self) -> None:
        # given a push at 09:00, located at 10:59:59
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=2, seconds=-1), "located")]
        # when the clock passes 11:00
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then no unlocated alert
        assert alerts_of(alerts, "unlocated") == []

    def test_located_one_second_late_raises_unlocated_due_at_push_plus_2h(self) -> None:
        # given a push at 09:00 and located only at 11:00:01
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=2, seconds=1), "located")]
        # when the clock passes 11:00
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then one unlocated alert, due and raised at 11:00:00 (event time)
        [alert] = alerts_of(alerts, "unlocated")
        assert alert["due_at"] == at(T0, hours=2)
        assert alert["raised_at"] == at(T0, hours=2)
        assert alert["subject"] == PERSON and alert["person_id"] == PERSON
        assert alert["tube_id"] is None
        assert alert["district"] == "district-a"
        assert alert["details"]["pushed_at"] == T0

    def test_deadline_fires_when_the_clock_reaches_it_not_before(self) -> None:
        # given a push at 09:00 and no located record at all
        events = [travel(PERSON, T0)]
        # when the clock stops one second before 11:00, then at 11:00 exactly
        before, *_ = run(events, until=at(T0, hours=2, seconds=-1))
        on_time, *_ = run(events, until=at(T0, hours=2))
        # then the alert exists only once the clock has reached the due instant
        assert alerts_of(before, "unlocated") == []
        assert _dues(on_time, "unlocated") == [at(T0, hours=2)]

    def test_watermark_alone_fires_the_deadline_after_allowed_lateness(self) -> None:
        # given a push at 09:00 and, for someone else, events at 11:04:59 and 11:05:00
        other = "traveller-99"
        early = [travel(PERSON, T0), travel(other, at(T0, hours=2, minutes=4, seconds=59))]
        late = [*early, followup(other, at(T0, hours=2, minutes=5), "located")]
        # when no --until is given: clock = latest event - 5 min
        at_4_59, *_ = run(early)
        at_5_00, *_ = run(late)
        # then the 11:00 deadline fires only once the watermark reaches 11:00
        assert [a for a in alerts_of(at_4_59, "unlocated") if a["subject"] == PERSON] == []
        assert [a["subject"] for a in alerts_of(at_5_00, "unlocated")] == [PERSON]

    def test_located_arriving_late_within_allowed_lateness_still_counts(self) -> None:
        # given the clock pushed to 11:04 by another person's event, then a located at 10:59
        events = [
            travel(PERSON, T0),
            travel("traveller-99", at(T0, hours=2, minutes=4)),
            followup(PERSON, at(T0, hours=1, minutes=59), "located"),
        ]
        # when the clock passes 11:00
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then the late-arriving (by < 5 min) located record is in time
        assert [a for a in alerts_of(alerts, "unlocated") if a["subject"] == PERSON] == []

    def test_released_before_the_deadline_raises_nothing(self) -> None:
        # given a push at 09:00 and a release at 10:00, never located
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=1), "released")]
        # when eight days pass
        alerts, *_ = run(events, until=at(T0, days=8))
        # then no requirement of that push lapses
        assert alerts == []

    def test_a_push_whose_regimen_ended_before_it_raises_nothing(self) -> None:
        # given high risk (7 days) arrived ten days before the push: the regimen ended
        # 09-03 00:00, before the push at 09-06 09:00 (no requirement runs after the end;
        # documented: a lapse at or after the regimen's end raises nothing)
        events = [travel(PERSON, T0, risk="high", arrived=at(T0, days=-10))]
        # when three days pass
        alerts, *_ = run(events, until=at(T0, days=3))
        # then no alert at all
        assert alerts == []

    def test_located_after_arrival_but_before_the_push_counts(self) -> None:
        # given arrival at 06:00, located at 08:00, pushed at 09:00 (documented choice)
        events = [
            followup(PERSON, at(T0, hours=-1), "located"),
            travel(PERSON, T0, arrived=at(T0, hours=-3)),
        ]
        # when the clock passes 11:00
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then no unlocated alert
        assert alerts_of(alerts, "unlocated") == []


LOCATED = at(T0, minutes=30)  # 09:30 located -> clearance until 09:30 tomorrow


class TestFollowupOverdue:
    """Daily clearance: lapses at last clearance + 24 h, + 48 h, … while the regimen runs."""

    def test_lapses_at_24h_48h_72h_after_the_located_record(self) -> None:
        # given a high-risk push (7 days) located at 09:30 and no visit since
        events = [travel(PERSON, T0), followup(PERSON, LOCATED, "located")]
        # when the clock reaches 09:30 three days later
        alerts, *_ = run(events, until=at(LOCATED, hours=72))
        # then one lapse a day, each counting the days overdue
        overdue = alerts_of(alerts, "followup_overdue")
        assert [a["due_at"] for a in overdue] == [
            at(LOCATED, hours=24), at(LOCATED, hours=48), at(LOCATED, hours=72)
        ]
        assert [a["details"]["days_overdue"] for a in overdue] == [1, 2, 3]
        assert {a["details"]["last_cleared_at"] for a in overdue} == {LOCATED}
        assert all(a["raised_at"] == a["due_at"] for a in overdue)

    def test_no_lapse_one_second_before_24h(self) -> None:
        # given located at 09:30, no visit
        events = [travel(PERSON, T0), followup(PERSON, LOCATED, "located")]
        # when the clock stops at 09:29:59 the next day
        alerts, *_ = run(events, until=at(LOCATED, hours=24, seconds=-1))
        # then no follow-up lapse yet
        assert alerts_of(alerts, "followup_overdue") == []

    def test_visit_exactly_at_24h_clears(self) -> None:
        # given a visit at 09:30:00 the next day (= last clearance + 24 h)
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, at(LOCATED, hours=24), "visit"),
        ]
        # when the clock stops one second before visit + 24 h
        alerts, *_ = run(events, until=at(LOCATED, hours=48, seconds=-1))
        # then no lapse until 24 h after that visit
        assert alerts_of(alerts, "followup_overdue") == []

    def test_visit_one_second_after_24h_is_late(self) -> None:
        # given located 09:30, a visit at 09:30:01 the next day
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, at(LOCATED, hours=24, seconds=1), "visit"),
        ]
        # when the clock reaches 09:30 the day after
        alerts, *_ = run(events, until=at(LOCATED, hours=48))
        # then the 24 h lapse fired; the late visit restarts the clock at 09:30:01
        # then the 24 h lapse fired once, at 09:30:00
        assert _dues(alerts, "followup_overdue") == [at(LOCATED, hours=24)]

    def test_visit_after_a_lapse_resets_the_chain(self) -> None:
        # given a lapse at +24 h, then a visit at +30 h
        visit = at(LOCATED, hours=30)
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, visit, "visit"),
        ]
        # when the clock reaches visit + 24 h
        alerts, *_ = run(events, until=at(visit, hours=24))
        # then the next lapse is visit + 24 h, not located + 48 h
        overdue = alerts_of(alerts, "followup_overdue")
        assert [a["due_at"] for a in overdue] == [at(LOCATED, hours=24), at(visit, hours=24)]
        assert overdue[1]["details"]["last_cleared_at"] == visit

    def test_visit_before_the_deadline_moves_it(self) -> None:
        # given a visit at 19:30 on day 1 -> clearance until 19:30 on day 2
        visit = at(LOCATED, hours=10)
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, visit, "visit"),
        ]
        # when the clock stops one second before visit + 24 h, then at it
        quiet, *_ = run(events, until=at(visit, hours=24, seconds=-1))
        lapsed, *_ = run(events, until=at(visit, hours=24))
        # then the lapse is due at visit + 24 h
        assert alerts_of(quiet, "followup_overdue") == []
        assert _dues(lapsed, "followup_overdue") == [at(visit, hours=24)]

    def test_no_lapse_is_due_before_the_push(self) -> None:
        # given arrival 09-03 09:00, located 09-04 08:00, pushed only 09-06 09:00: nobody
        # was asked to follow the person up before the push (as days that ended before the
        # push are not test days)
        events = [
            followup(PERSON, at(T0, days=-2, hours=-1), "located"),
            travel(PERSON, T0, risk="high", arrived=at(T0, days=-3)),
        ]
        # when the clock reaches 09:00 two days after the push
        alerts, *_ = run(events, until=at(T0, days=2))
        # then no follow-up lapse carries a due instant before the push; documented: the
        # older record clears the person from the push on, so lapses are push + 24 h, + 48 h
        assert _dues(alerts, "followup_overdue") == [at(T0, hours=24), at(T0, hours=48)]

    def test_no_followup_lapse_before_the_person_is_located(self) -> None:
        # given a push never located: only unlocated, no follow-up chain (first clearance
        # is the located record)
        # when three days pass
        alerts, *_ = run([travel(PERSON, T0)], until=at(T0, days=3))
        # then only unlocated
        assert alerts_of(alerts, "followup_overdue") == []
        assert len(alerts_of(alerts, "unlocated")) == 1

    def test_no_lapse_at_the_end_of_the_regimen(self) -> None:
        # given inside_province (3 days) arriving at 00:00 on 09-06, located at once:
        # regimen ends 09-09 00:00, lapses would be 09-07, 09-08 and 09-09 00:00
        events = [
            travel(PERSON, DAY1, risk="inside_province"),
            followup(PERSON, DAY1, "located"),
        ]
        # when six days pass
        alerts, *_ = run(events, until=at(DAY1, days=6))
        # then the lapse due exactly at the regimen's end raises nothing
        assert _dues(alerts, "followup_overdue") == [DAY2, DAY3]

    def test_lapse_one_second_before_the_end_of_the_regimen_fires(self) -> None:
        # given arrival and located at 23:59:59 on 09-05: regimen 09-05..09-07, ends 09-08
        # 00:00; lapses at 09-06 23:59:59 and 09-07 23:59:59 (one second before the end)
        arrived = at(DAY1, seconds=-1)
        events = [
            travel(PERSON, arrived, risk="inside_province"),
            followup(PERSON, arrived, "located"),
        ]
        # when six days pass
        alerts, *_ = run(events, until=at(DAY1, days=6))
        # then lapses at 23:59:59 on 09-06 and 09-07
        assert _dues(alerts, "followup_overdue") == [at(DAY2, seconds=-1), at(DAY3, seconds=-1)]

    def test_release_stops_the_chain(self) -> None:
        # given a lapse at +24 h, then released at +30 h
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, at(LOCATED, hours=30), "released"),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(T0, days=10))
        # then no lapse after the release, and no test day after it either
        assert _dues(alerts, "followup_overdue") == [at(LOCATED, hours=24)]
        assert all(a["due_at"] <= at(LOCATED, hours=30) for a in alerts)

    def test_release_exactly_at_a_lapse_instant_stops_it(self) -> None:
        # given released at +48 h exactly (documented: a lapse at the release raises nothing)
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, at(LOCATED, hours=48), "released"),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(T0, days=10))
        # then only the +24 h lapse
        assert _dues(alerts, "followup_overdue") == [at(LOCATED, hours=24)]

    def test_release_one_second_after_a_lapse_instant_does_not_undo_it(self) -> None:
        # given located 09:30, released at 09:30:01 two days later
        events = [
            travel(PERSON, T0),
            followup(PERSON, LOCATED, "located"),
            followup(PERSON, at(LOCATED, hours=48, seconds=1), "released"),
        ]
        # when the clock runs on for days
        alerts, *_ = run(events, until=at(T0, days=10))
        # then both the +24 h and the +48 h lapses stand
        assert _dues(alerts, "followup_overdue") == [at(LOCATED, hours=24), at(LOCATED, hours=48)]


# risk -> regimen days and test days (CONTRACT.md §4)
REGIMENS = {
    "high": (7, [1, 2, 3, 5, 7]),
    "medium": (7, [1, 4, 7]),
    "outside_province": (3, [1, 2, 3]),
    "inside_province": (3, [1, 3]),
}


def _day(number: int) -> str:
    """00:00 local opening regimen day ``number`` when day 1 is 2022-09-06."""
    return at(DAY1, days=number - 1)


class TestRegimenTestMissed:
    """No sampling on a required local day -> ``test_missed`` due 00:00 the next day."""

    @pytest.mark.parametrize("risk", sorted(REGIMENS))
    def test_each_required_day_without_sampling_lapses_at_its_end(self, risk: str) -> None:
        # given a push at 09:00 on day 1 (arrived then) and no sampling at all
        days, test_days = REGIMENS[risk]
        events = [travel(PERSON, T0, risk=risk)]
        # when the clock passes the regimen's end by days
        alerts, *_ = run(events, until=at(DAY1, days=days + 3))
        # then one test_missed per test day, due 00:00 after it, and no other day
        missed = alerts_of(alerts, "test_missed")
        assert [a["due_at"] for a in missed] == [_day(n + 1) for n in test_days]
        assert [a["details"]["regimen_day"] for a in missed] == test_days
        assert [a["details"]["date"] for a in missed] == [_day(n)[:10] for n in test_days]
        assert {a["details"]["requirement"] for a in missed} == {f"regimen:{risk}"}
        assert all(a["raised_at"] == a["due_at"] for a in missed)

    @pytest.mark.parametrize("risk", sorted(REGIMENS))
    def test_a_sampling_on_every_test_day_satisfies_the_regimen(self, risk: str) -> None:
        # given a push at 09:00 on day 1 and a swab at 10:00 on each test day
        days, test_days = REGIMENS[risk]
        events = [travel(PERSON, T0, risk=risk)] + [
            sampling(PERSON, f"tube-{n}", at(_day(n), hours=10)) for n in test_days
        ]
        # when the clock passes the regimen's end
        alerts, *_ = run(events, until=at(DAY1, days=days + 3))
        # then no test_missed
        assert alerts_of(alerts, "test_missed") == []

    def test_day_1_is_the_local_date_of_arrival_not_of_the_push(self) -> None:
        # given arrival 09-05 20:00, push 09-06 09:00 (inside_province: tests days 1 and 3)
        events = [travel(PERSON, T0, risk="inside_province", arrived=at(DAY1, hours=-4))]
        # when five days pass
        alerts, *_ = run(events, until=at(DAY1, days=5))
        # then day 1 (09-05) ended before the push: only day 3 = 09-07 is required
        assert _dues(alerts, "test_missed") == [DAY3]

    def test_arrival_at_one_minute_past_utc_midnight_is_a_local_day(self) -> None:
        # given arrival at 07:59 local on 09-06 (23:59 UTC on 09-05)
        events = [travel(PERSON, at(DAY1, hours=7, minutes=59), risk="inside_province")]
        # when five days pass
        alerts, *_ = run(events, until=at(DAY1, days=5))
        # then day 1 is 09-06 local: due 09-07 00:00 and day 3 due 09-09 00:00
        assert _dues(alerts, "test_missed") == [DAY2, at(DAY1, days=3)]

    def test_sampling_at_23_59_59_counts_for_the_day(self) -> None:
        # given inside_province from 09-06, a sampling at 23:59:59 on day 1
        events = [
            travel(PERSON, T0, risk="inside_province"),
            sampling(PERSON, "tube-late", at(DAY2, seconds=-1)),
        ]
        # when the clock reaches 09-08 00:00
        alerts, *_ = run(events, until=at(DAY1, days=2))
        # then day 1 was satisfied
        assert alerts_of(alerts, "test_missed") == []

    def test_sampling_at_midnight_belongs_to_the_next_day(self) -> None:
        # given a sampling at 00:00:00 on 09-07 (day 2, not a test day of inside_province)
        events = [
            travel(PERSON, T0, risk="inside_province"),
            sampling(PERSON, "tube-mid", DAY2),
        ]
        # when the clock reaches 09-08 00:00
        alerts, *_ = run(events, until=at(DAY1, days=2))
        # then day 1 had no sampling
        assert _dues(alerts, "test_missed") == [DAY2]

    def test_sampling_at_00_00_00_counts_for_the_day_it_opens(self) -> None:
        # given inside_province from 09-06: day 3 = 09-08, sampled 09-08 00:00:00
        events = [
            travel(PERSON, T0, risk="inside_province"),
            sampling(PERSON, "tube-d1", at(T0, hours=1)),
            sampling(PERSON, "tube-d3", DAY3),
        ]
        # when five days pass
        alerts, *_ = run(events, until=at(DAY1, days=5))
        # then days 1 and 3 were satisfied
        assert alerts_of(alerts, "test_missed") == []

    def test_deadline_not_reached_one_second_before_midnight(self) -> None:
        # given inside_province from 09-06 09:00, no swab
        events = [travel(PERSON, T0, risk="inside_province")]
        # when the clock stops at 23:59:59, then at 00:00:00
        before, *_ = run(events, until=at(DAY2, seconds=-1))
        on_time, *_ = run(events, until=DAY2)
        # then day 1's test_missed exists only at 00:00
        assert alerts_of(before, "test_missed") == []
        assert _dues(on_time, "test_missed") == [DAY2]

    def test_a_pooled_sampling_counts_as_a_test(self) -> None:
        # given inside_province from 09-06 09:00, a swab at 12:00 into a 10-in-1 tube
        events = [
            travel(PERSON, T0, risk="inside_province"),
            sampling(PERSON, "tube-pool", at(T0, hours=3), pool_size=10),
        ]
        # when the clock reaches 09-08 00:00
        alerts, *_ = run(events, until=DAY3)
        # then day 1 is satisfied
        assert alerts_of(alerts, "test_missed") == []

    def test_a_sampling_arriving_before_the_push_counts_for_its_day(self) -> None:
        # given a sampling at 08:00 and a push at 09:00 the same day
        events = [
            sampling(PERSON, "tube-early", at(T0, hours=-1)),
            travel(PERSON, T0, risk="inside_province"),
        ]
        # when the clock reaches 09-08 00:00
        alerts, *_ = run(events, until=DAY3)
        # then day 1 was satisfied
        assert alerts_of(alerts, "test_missed") == []

    def test_days_that_ended_before_the_push_are_not_required(self) -> None:
        # given high risk arriving 09-04 10:00 (days 1 = 09-04, 2 = 09-05, 3 = 09-06, …)
        # pushed at 09-06 00:00:01, a second after day 2 ended
        arrived = at(DAY1, days=-2, hours=10)
        events = [travel(PERSON, at(DAY1, seconds=1), risk="high", arrived=arrived)]
        # when the clock passes the regimen's end
        alerts, *_ = run(events, until=at(DAY1, days=8))
        # then days 1 and 2 are not required; days 3, 5, 7 are
        missed = alerts_of(alerts, "test_missed")
        assert [a["details"]["regimen_day"] for a in missed] == [3, 5, 7]
        assert [a["due_at"] for a in missed] == [DAY2, at(DAY1, days=3), at(DAY1, days=5)]

    def test_a_day_ending_at_the_push_itself_did_not_end_before_it(self) -> None:
        # given the same arrival, pushed at 09-06 00:00:00, the instant day 2 ends
        arrived = at(DAY1, days=-2, hours=10)
        events = [travel(PERSON, DAY1, risk="high", arrived=arrived)]
        alerts, *_ = run(events, until=at(DAY1, days=8))
        # then day 2 is required (§4: only days that ended *before* the push are not), due at
        # the push itself
        missed = alerts_of(alerts, "test_missed")
        assert [a["details"]["regimen_day"] for a in missed] == [2, 3, 5, 7]
        assert missed[0]["due_at"] == DAY1

    def test_a_push_at_the_instant_its_regimen_ends_still_requires_its_last_day(self) -> None:
        # given inside_province (days 1 and 3) arriving 09-04 10:00: the regimen ends 09-07
        # 00:00, the instant of the push
        arrived = at(DAY1, days=-2, hours=10)
        events = [travel(PERSON, at(DAY1, days=1), risk="inside_province", arrived=arrived)]
        alerts, *_ = run(events, until=at(DAY1, days=3))
        # then day 3 is missed at the push, and the person is still to be located
        assert [(a["kind"], a["due_at"]) for a in alerts] == [
            ("test_missed", at(DAY1, days=1)), ("unlocated", at(DAY1, days=1, hours=2))]

    def test_a_push_after_its_regimen_ended_requires_nothing(self) -> None:
        arrived = at(DAY1, days=-2, hours=10)
        events = [travel(PERSON, at(DAY1, days=1, seconds=1), risk="inside_province",
                         arrived=arrived)]
        alerts, *_ = run(events, until=at(DAY1, days=3))
        assert alerts == []

    def test_a_located_record_after_the_push_counts_though_the_arrival_is_to_come(
        self,
    ) -> None:
        # given a push at 09:00 of a person arriving in two days, located at 10:00
        events = [travel(PERSON, T0, risk="inside_province", arrived=at(T0, days=2)),
                  followup(PERSON, at(T0, hours=1), "located")]
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then they were located within 2 h of the push: no unlocated (§4)
        assert alerts_of(alerts, "unlocated") == []

    def test_a_day_still_running_at_the_push_is_required(self) -> None:
        # given the same arrival, pushed at 09-05 23:59:59 (one second before day 2 ends)
        arrived = at(DAY1, days=-2, hours=10)
        events = [travel(PERSON, at(DAY1, seconds=-1), risk="high", arrived=arrived)]
        # when the clock passes the regimen's end
        alerts, *_ = run(events, until=at(DAY1, days=8))
        missed = alerts_of(alerts, "test_missed")
        # then day 2 (ending one second after the push) is required
        assert [a["details"]["regimen_day"] for a in missed] == [2, 3, 5, 7]
        assert missed[0]["due_at"] == DAY1

    def test_release_ends_the_test_requirements(self) -> None:
        # given high risk from 09-06, sampled on day 1, released on day 2 at noon
        events = [
            travel(PERSON, T0, risk="high"),
            sampling(PERSON, "tube-1", at(T0, hours=1)),
            followup(PERSON, at(DAY2, hours=12), "released"),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(DAY1, days=10))
        # then days 2..7 are no longer required
        assert alerts_of(alerts, "test_missed") == []

    def test_a_sampling_for_someone_else_does_not_count(self) -> None:
        # given a push for traveller-01 at 09:00 and a 10:00 swab of traveller-02
        events = [
            travel(PERSON, T0, risk="inside_province"),
            sampling("traveller-02", "tube-x", at(T0, hours=1)),
        ]
        # when the clock reaches 09-07 00:00
        alerts, *_ = run(events, until=DAY2)
        # then traveller-01 missed day 1
        assert [a["subject"] for a in alerts_of(alerts, "test_missed")] == [PERSON]
