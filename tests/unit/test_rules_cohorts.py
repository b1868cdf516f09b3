"""Key populations (CONTRACT.md §4): a sampling due every ``test_every`` while active."""

from __future__ import annotations

import pytest
from helpers import T0, alerts_of, at, cohort, run, sampling, travel

PERSON = "worker-0001"
ENROLLED = T0  # 09:00 enrolment -> first sampling due 09:00 + test_every

# cohort -> test_every hours (CONTRACT.md §4)
COHORT_HOURS = {
    "cold_chain": 24,
    "medical": 24,
    "courier": 48,
    "construction": 48,
    "truck_driver": 48,
    "school_staff": 48,
    "elderly_care": 48,
}


def _dues(alerts: list[dict[str, object]]) -> list[object]:
    return [alert["due_at"] for alert in alerts_of(alerts, "test_missed")]


class TestCohortCadence:
    @pytest.mark.parametrize("name", sorted(COHORT_HOURS))
    def test_first_test_is_due_at_enrolment_plus_test_every(self, name: str) -> None:
        # given an enrolment at 09:00 and no sampling
        hours = COHORT_HOURS[name]
        events = [cohort(PERSON, ENROLLED, name, district="district-c")]
        # when the clock stops one second before the due instant, then at it
        before, *_ = run(events, until=at(ENROLLED, hours=hours, seconds=-1))
        on_time, *_ = run(events, until=at(ENROLLED, hours=hours))
        # then test_missed appears exactly at enrolment + test_every
        assert alerts_of(before, "test_missed") == []
        [alert] = alerts_of(on_time, "test_missed")
        assert alert["due_at"] == at(ENROLLED, hours=hours)
        assert alert["raised_at"] == alert["due_at"]
        assert alert["details"]["requirement"] == f"cohort:{name}"
        assert (alert["subject"], alert["person_id"], alert["tube_id"]) == (PERSON, PERSON, None)
        assert alert["district"] == "district-c"

    @pytest.mark.parametrize("name", sorted(COHORT_HOURS))
    def test_lapses_repeat_every_test_every_while_none_arrives(self, name: str) -> None:
        # given an enrolment at 09:00 and no swab
        hours = COHORT_HOURS[name]
        events = [cohort(PERSON, ENROLLED, name)]
        # when the clock reaches enrolment + 3 x test_every
        alerts, *_ = run(events, until=at(ENROLLED, hours=3 * hours))
        # then a lapse at every multiple of test_every
        assert _dues(alerts) == [at(ENROLLED, hours=n * hours) for n in (1, 2, 3)]

    def test_a_sampling_moves_the_due_instant_to_sampled_plus_test_every(self) -> None:
        # given cold_chain (24 h) enrolled 09:00, sampled 19:00 -> next due 19:00 tomorrow
        sampled = at(ENROLLED, hours=10)
        events = [cohort(PERSON, ENROLLED), sampling(PERSON, "tube-1", sampled)]
        # when the clock stops at 18:59:59 tomorrow, then at 19:00:00
        before, *_ = run(events, until=at(sampled, hours=24, seconds=-1))
        on_time, *_ = run(events, until=at(sampled, hours=24))
        # then the lapse is due at sampled + 24 h, not before
        assert alerts_of(before, "test_missed") == []
        [alert] = alerts_of(on_time, "test_missed")
        assert alert["due_at"] == at(sampled, hours=24)
        assert alert["details"]["last_sampled_at"] == sampled

    def test_a_sampling_exactly_at_the_due_instant_is_in_time(self) -> None:
        # given cold_chain enrolled 09:00, sampled 09:00:00 the next day
        events = [cohort(PERSON, ENROLLED), sampling(PERSON, "tube-1", at(ENROLLED, hours=24))]
        # when the clock reaches 08:59:59 two days later
        alerts, *_ = run(events, until=at(ENROLLED, hours=48, seconds=-1))
        # then no lapse
        assert alerts_of(alerts, "test_missed") == []

    def test_a_sampling_one_second_late_still_moves_the_next_due(self) -> None:
        # given the sampling at 09:00:01 the next day: the 09:00 lapse fires, the next
        # requirement is 09:00:01 the day after (sampled + 24 h), not 09:00
        late = at(ENROLLED, hours=24, seconds=1)
        events = [cohort(PERSON, ENROLLED), sampling(PERSON, "tube-1", late)]
        # when the clock reaches 09:00 two days later, then 09:00:01
        at_48h, *_ = run(events, until=at(ENROLLED, hours=48))
        after, *_ = run(events, until=at(late, hours=24))
        # then a lapse at 09:00 tomorrow and the next at 09:00:01 the day after
        assert _dues(at_48h) == [at(ENROLLED, hours=24)]
        assert _dues(after) == [at(ENROLLED, hours=24), at(late, hours=24)]

    def test_a_sampling_after_lapses_restarts_the_cadence(self) -> None:
        # given courier (48 h): lapse at +48 h, sampled at +60 h -> next due +108 h
        sampled = at(ENROLLED, hours=60)
        events = [cohort(PERSON, ENROLLED, "courier"), sampling(PERSON, "tube-1", sampled)]
        # when the clock reaches sampled + 48 h
        alerts, *_ = run(events, until=at(sampled, hours=48))
        # then lapses at enrolment + 48 h and sampled + 48 h
        assert _dues(alerts) == [at(ENROLLED, hours=48), at(sampled, hours=48)]

    def test_leaving_before_the_due_instant_ends_the_requirement(self) -> None:
        # given enrolled 09:00 (cold_chain), left 19:00
        events = [
            cohort(PERSON, ENROLLED),
            cohort(PERSON, at(ENROLLED, hours=10), active=False),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(ENROLLED, days=10))
        # then nothing was ever due
        assert alerts == []

    def test_leaving_after_a_lapse_keeps_that_lapse_and_stops_the_next(self) -> None:
        # given enrolled 09:00, left 15:00 the next day
        events = [
            cohort(PERSON, ENROLLED),
            cohort(PERSON, at(ENROLLED, hours=30), active=False),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(ENROLLED, days=10))
        # then only the 09:00 lapse of the next day
        assert _dues(alerts) == [at(ENROLLED, hours=24)]

    def test_leaving_exactly_at_a_due_instant_raises_nothing_for_it(self) -> None:
        # documented: a lapse at or after the leaving instant raises nothing
        # given enrolled 09:00, left at 09:00 two days later (a due instant)
        events = [
            cohort(PERSON, ENROLLED),
            cohort(PERSON, at(ENROLLED, hours=48), active=False),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(ENROLLED, days=10))
        # then only the first lapse
        assert _dues(alerts) == [at(ENROLLED, hours=24)]

    def test_leaving_one_second_after_a_due_instant_keeps_its_lapse(self) -> None:
        # given enrolled 09:00, left 09:00:01 the next day
        events = [
            cohort(PERSON, ENROLLED),
            cohort(PERSON, at(ENROLLED, hours=24, seconds=1), active=False),
        ]
        # when ten days pass
        alerts, *_ = run(events, until=at(ENROLLED, days=10))
        # then the 09:00 lapse stands
        assert _dues(alerts) == [at(ENROLLED, hours=24)]

    def test_a_leave_and_a_join_at_the_same_instant_leave_a_member_in_either_order(
        self,
    ) -> None:
        # given enrolled 09:00, then a leave and a join both at 19:00 (documented: the
        # person stays a member)
        enrolled = cohort(PERSON, ENROLLED)
        left = cohort(PERSON, at(ENROLLED, hours=10), active=False)
        joined = cohort(PERSON, at(ENROLLED, hours=10))
        # when replayed in both arrival orders to 19:00 tomorrow
        first, *_ = run([enrolled, left, joined], until=at(ENROLLED, hours=34))
        second, *_ = run([enrolled, joined, left], until=at(ENROLLED, hours=34))
        # then the same lapses, counted from the re-join at 19:00
        assert first == second
        assert _dues(first) == [at(ENROLLED, hours=34)]

    def test_re_enrolment_starts_a_new_cadence(self) -> None:
        # given left at +2 h, re-enrolled at +5 h -> first due +29 h
        again = at(ENROLLED, hours=5)
        events = [
            cohort(PERSON, ENROLLED),
            cohort(PERSON, at(ENROLLED, hours=2), active=False),
            cohort(PERSON, again),
        ]
        # when the clock reaches re-enrolment + 24 h
        alerts, *_ = run(events, until=at(again, hours=24))
        # then the only lapse counts from the re-enrolment
        assert _dues(alerts) == [at(again, hours=24)]

    def test_a_leave_and_rejoin_after_a_due_instant_keep_its_lapse_however_late_it_fires(
        self,
    ) -> None:
        # given enrolled 09:00 (due 09:00 tomorrow), then a leave at 09:01 and a re-join at
        # 09:02 tomorrow, both after that due instant
        changes = [
            cohort(PERSON, at(ENROLLED, hours=24, minutes=1), active=False),
            cohort(PERSON, at(ENROLLED, hours=24, minutes=2)),
        ]
        other = travel("traveller-9", at(ENROLLED, hours=24, minutes=6))
        until = at(ENROLLED, hours=48, minutes=2)
        # when the lapse fires after both were applied, or before (another person's push at
        # 09:06 moved the clock first)
        late, *_ = run([cohort(PERSON, ENROLLED), *changes], until=until)
        early, *_ = run([cohort(PERSON, ENROLLED), other, *changes], until=until)
        # then both raise the 09:00 lapse, then one counted from the re-join
        mine = [[a for a in alerts if a["subject"] == PERSON] for alerts in (late, early)]
        assert mine[0] == mine[1]
        assert _dues(mine[0]) == [at(ENROLLED, hours=24), until]

    def test_repeated_activation_keeps_the_enrolment(self) -> None:
        # documented: an activation while already active keeps the enrolment
        # given enrolled 09:00, activated again 05:00 the next day
        events = [cohort(PERSON, ENROLLED), cohort(PERSON, at(ENROLLED, hours=20))]
        # when the clock reaches 09:00 the next day
        alerts, *_ = run(events, until=at(ENROLLED, hours=24))
        # then the first due instant stands
        assert _dues(alerts) == [at(ENROLLED, hours=24)]

    def test_unknown_cohort_goes_to_the_dead_letter_output_and_processing_goes_on(
        self,
    ) -> None:
        # given a cohort name the policy does not define, then a valid push
        events = [
            cohort(PERSON, ENROLLED, "astronauts"),
            travel("traveller-01", at(ENROLLED, hours=1)),
        ]
        # when the clock runs three days
        alerts, _, letters, stats = run(events, until=at(ENROLLED, days=3))
        # then one dead letter on line 1, and the push was still processed
        [letter] = letters
        assert letter["reason"] == "unknown_cohort"
        assert letter["line"] == 1
        assert "astronauts" in letter["original"]
        assert {a["subject"] for a in alerts} == {"traveller-01"}
        assert stats["rejected:unknown_cohort"] == 1
