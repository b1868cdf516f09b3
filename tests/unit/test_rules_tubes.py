"""Sample ⋈ lab (CONTRACT.md §4): lab SLAs, positives, pooled positives, retests, orphans."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import T0, alerts_of, at, lab, run, sampling, travel

TUBE = "tube-0001"
POOL = "pool-0001"
ALICE, BOB, CAROL = "person-alice", "person-bob", "person-carol"
COLLECTED = T0  # 09:00 swab -> received due 13:00, reported due 21:00
REPORTED = at(T0, hours=3)  # 12:00 report -> retests due 18:00, orphan check 12:00 tomorrow


def _sla(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["details"]["stage"], a["due_at"]) for a in alerts_of(alerts, "lab_sla_breached")]


class TestLabSla:
    """Transport: received within 4 h of collection; result: reported within 12 h."""

    def test_received_exactly_at_4h_and_reported_exactly_at_12h_are_in_time(self) -> None:
        # given a swab at 09:00, received 13:00:00, reported 21:00:00
        events = [
            sampling(ALICE, TUBE, COLLECTED),
            lab(TUBE, at(COLLECTED, hours=4)),
            lab(TUBE, at(COLLECTED, hours=12), "negative"),
        ]
        # when two days pass
        alerts, *_ = run(events, until=at(COLLECTED, days=2))
        # then no SLA breach; the lab, reporting nothing for 8 h with the tube waiting, is
        # silent from 3 h after it received it (contract v1.2 §4: lab_silent)
        assert [(a["kind"], a["due_at"]) for a in alerts] == [
            ("lab_silent", at(COLLECTED, hours=7))]

    def test_received_one_second_late_breaches_transport_once(self) -> None:
        # given a swab at 09:00, received 13:00:01, reported 20:00
        events = [
            sampling(ALICE, TUBE, COLLECTED, district="district-t"),
            lab(TUBE, at(COLLECTED, hours=4, seconds=1)),
            lab(TUBE, at(COLLECTED, hours=11), "negative"),
        ]
        # when two days pass
        alerts, *_ = run(events, until=at(COLLECTED, days=2))
        # then one transport breach due 13:00, about the tube
        [alert] = alerts_of(alerts, "lab_sla_breached")
        assert alert["details"]["stage"] == "transport"
        assert alert["due_at"] == alert["raised_at"] == at(COLLECTED, hours=4)
        assert alert["subject"] == alert["tube_id"] == TUBE
        assert alert["person_id"] is None
        assert alert["district"] == "district-t"

    def test_reported_one_second_late_breaches_result_once(self) -> None:
        # given a swab at 09:00, received 10:00, reported 21:00:01
        events = [
            sampling(ALICE, TUBE, COLLECTED),
            lab(TUBE, at(COLLECTED, hours=1)),
            lab(TUBE, at(COLLECTED, hours=12, seconds=1), "negative"),
        ]
        # when two days pass
        alerts, *_ = run(events, until=at(COLLECTED, days=2))
        # then one result breach due 21:00
        assert _sla(alerts) == [("result", at(COLLECTED, hours=12))]

    def test_a_report_without_received_satisfies_transport(self) -> None:
        # given a swab at 09:00 reported at 12:00 with no received record
        events = [sampling(ALICE, TUBE, COLLECTED), lab(TUBE, at(COLLECTED, hours=3), "negative")]
        # when two days pass
        alerts, *_ = run(events, until=at(COLLECTED, days=2))
        # then neither stage breached
        assert alerts == []

    def test_nothing_from_the_lab_breaches_both_stages_once_each(self) -> None:
        # given a swab and silence from the lab for days
        events = [sampling(ALICE, TUBE, COLLECTED)]
        # when five days pass
        alerts, *_ = run(events, until=at(COLLECTED, days=5))
        # then transport at 13:00 and result at 21:00, never again
        assert _sla(alerts) == [
            ("transport", at(COLLECTED, hours=4)),
            ("result", at(COLLECTED, hours=12)),
        ]

    def test_deadlines_fire_at_4h_and_12h_not_one_second_before(self) -> None:
        # given a swab at 09:00 and no lab record
        events = [sampling(ALICE, TUBE, COLLECTED)]
        # when the clock stops 1 s before and exactly at 13:00 and 21:00
        before_4h, *_ = run(events, until=at(COLLECTED, hours=4, seconds=-1))
        at_4h, *_ = run(events, until=at(COLLECTED, hours=4))
        before_12h, *_ = run(events, until=at(COLLECTED, hours=12, seconds=-1))
        at_12h, *_ = run(events, until=at(COLLECTED, hours=12))
        # then each breach appears at its due instant
        assert _sla(before_4h) == []
        assert _sla(at_4h) == [("transport", at(COLLECTED, hours=4))]
        assert _sla(before_12h) == [("transport", at(COLLECTED, hours=4))]
        assert _sla(at_12h)[-1] == ("result", at(COLLECTED, hours=12))

    def test_sla_counts_from_the_earliest_collection_of_a_pool(self) -> None:
        # given pool members swabbed at 09:00 and 10:00, arriving latest first
        events = [
            sampling(BOB, POOL, at(COLLECTED, hours=1), pool_size=10),
            sampling(ALICE, POOL, COLLECTED, pool_size=10),
            lab(POOL, at(COLLECTED, hours=4, minutes=30)),
        ]
        # when the clock reaches 15:00
        alerts, *_ = run(events, until=at(COLLECTED, hours=6))
        # then transport was due 13:00 (from 09:00), and 13:30 is late
        assert _sla(alerts) == [("transport", at(COLLECTED, hours=4))]


class TestPositive:
    def test_a_single_tube_reported_positive_raises_one_positive_for_its_person(self) -> None:
        # given Alice swabbed 09:00 into a single tube, reported positive 12:00
        events = [
            sampling(ALICE, TUBE, COLLECTED, district="district-p"),
            lab(TUBE, REPORTED, "positive", lab_id="lab-9"),
        ]
        # when the clock runs on
        alerts, *_ = run(events, until=at(REPORTED, days=2))
        # then one positive alert for Alice naming the tube, due at the report
        [alert] = alerts
        assert alert["kind"] == "positive"
        assert (alert["subject"], alert["person_id"], alert["tube_id"]) == (ALICE, ALICE, TUBE)
        assert alert["district"] == "district-p"
        assert alert["due_at"] == alert["raised_at"] == REPORTED
        assert alert["details"]["lab_id"] == "lab-9"

    def test_positive_is_raised_without_waiting_for_the_clock(self) -> None:
        # given a single tube swabbed 09:00 and reported positive 12:00
        events = [sampling(ALICE, TUBE, COLLECTED), lab(TUBE, REPORTED, "positive")]
        # when the file ends with no --until
        alerts, *_ = run(events)
        # then the positive is already out
        assert [a["kind"] for a in alerts] == ["positive"]

    @pytest.mark.parametrize("result", ["negative", "invalid"])
    def test_a_single_tube_not_positive_raises_no_positive(self, result: str) -> None:
        # given a single tube reported negative or invalid at 12:00
        events = [sampling(ALICE, TUBE, COLLECTED), lab(TUBE, REPORTED, result)]
        # when two days pass
        alerts, *_ = run(events, until=at(REPORTED, days=2))
        # then no positive, no pool_positive
        assert alerts_of(alerts, "positive") == []
        assert alerts_of(alerts, "pool_positive") == []

    def test_a_later_positive_report_of_a_negative_tube_is_raised(self) -> None:
        # given a tube reported negative at 12:00, then positive at 13:00 (a correction)
        events = [
            sampling(ALICE, TUBE, COLLECTED),
            lab(TUBE, REPORTED, "negative"),
            lab(TUBE, at(REPORTED, hours=1), "positive"),
        ]
        # when two days pass
        alerts, *_ = run(events, until=at(REPORTED, days=2))
        # then the tube was reported positive (§4), and that is raised, at the positive report
        assert [(a["kind"], a["due_at"]) for a in alerts] == [
            ("positive", at(REPORTED, hours=1))]

    def test_a_later_negative_report_of_a_positive_tube_is_ignored(self) -> None:
        # documented: the first report of a tube is its result, unless a later one is positive
        events = [
            sampling(ALICE, TUBE, COLLECTED),
            lab(TUBE, REPORTED, "positive"),
            lab(TUBE, at(REPORTED, hours=1), "negative"),
        ]
        alerts, *_ = run(events, until=at(REPORTED, days=2))
        assert [(a["kind"], a["due_at"]) for a in alerts] == [("positive", REPORTED)]


class TestResultsBeforeSamplings:
    def test_positive_result_before_its_sampling_gives_the_same_alert(self) -> None:
        # given the same swab and report in both arrival orders
        in_order = [sampling(ALICE, TUBE, COLLECTED), lab(TUBE, REPORTED, "positive")]
        reversed_ = [in_order[1], in_order[0]]
        # when both files are replayed
        first, *_ = run(in_order, until=at(REPORTED, days=2))
        second, *_ = run(reversed_, until=at(REPORTED, days=2))
        # then the alert is the same, byte for byte
        assert first == second
        assert [a["kind"] for a in second] == ["positive"]

    def test_pooled_positive_before_its_samplings_lists_every_member(self) -> None:
        # given the report first, then members sampled earlier arriving within lateness
        events = [
            lab(POOL, REPORTED, "positive"),
            sampling(ALICE, POOL, COLLECTED, pool_size=10),
            sampling(BOB, POOL, at(COLLECTED, minutes=1), pool_size=10),
        ]
        # when the clock passes 12:00
        alerts, *_ = run(events, until=at(REPORTED, hours=1))
        # then the pool_positive lists both
        [alert] = alerts_of(alerts, "pool_positive")
        assert alert["details"]["members"] == [ALICE, BOB]

    def test_a_result_before_samplings_is_not_an_orphan(self) -> None:
        # given the 12:00 report arriving before the 09:00 swab
        events = [lab(TUBE, REPORTED, "negative"), sampling(ALICE, TUBE, COLLECTED)]
        # when three days pass
        alerts, *_ = run(events, until=at(REPORTED, days=3))
        # then no orphan and no other alert
        assert alerts == []


class TestPoolPositive:
    def _pool(self, *members: str, result: str = "positive") -> list[dict[str, Any]]:
        swabs = [
            sampling(person, POOL, at(COLLECTED, minutes=i), pool_size=10)
            for i, person in enumerate(members)
        ]
        return [*swabs, lab(POOL, REPORTED, result)]

    def test_a_pooled_positive_raises_one_alert_listing_its_members(self) -> None:
        # given Carol, Alice, Bob swabbed 09:00-09:02 into a 10-in-1 tube, positive at 12:00
        events = self._pool(CAROL, ALICE, BOB)
        # when the clock passes 12:00
        alerts, *_ = run(events, until=at(REPORTED, hours=1))
        # then one pool_positive for the tube listing all three
        [alert] = alerts_of(alerts, "pool_positive")
        assert alert["subject"] == alert["tube_id"] == POOL
        assert alert["person_id"] is None
        assert alert["due_at"] == REPORTED
        assert alert["details"]["members"] == [ALICE, BOB, CAROL]
        assert alert["details"]["pool_size"] == 10
        assert alerts_of(alerts, "positive") == []

    def test_members_swabbed_after_the_report_are_not_listed_however_late_it_fires(
        self,
    ) -> None:
        # given Alice swabbed 09:00 into the pool, its positive report at 12:00, and Bob's
        # swab into the same pool at 12:01 (after the report)
        bob = sampling(BOB, POOL, at(REPORTED, minutes=1), pool_size=10)
        events = [*self._pool(ALICE), bob]
        # when the alert fires after Bob was applied, or before (another person's push at
        # 12:06 moved the clock first)
        other = travel("traveller-9", at(REPORTED, minutes=6))
        late, *_ = run(events, until=at(REPORTED, hours=1))
        early, *_ = run([*events[:-1], other, bob], until=at(REPORTED, hours=1))
        # then both list the members swabbed by the report: Alice
        assert alerts_of(late, "pool_positive") == alerts_of(early, "pool_positive")
        [alert] = alerts_of(late, "pool_positive")
        assert alert["details"]["members"] == [ALICE]

    def test_a_pool_first_swabbed_after_its_report_is_listed_at_that_swab_in_any_order(
        self,
    ) -> None:
        # given a pooled positive at 12:00 and the only swab into that pool at 12:01
        bob = sampling(BOB, POOL, at(REPORTED, minutes=1), pool_size=10)
        events = [lab(POOL, REPORTED, "positive"), bob]
        # when the report's check fires after Bob was applied, or before
        other = travel("traveller-9", at(REPORTED, minutes=6))
        late, *_ = run(events, until=at(REPORTED, hours=1))
        early, *_ = run([events[0], other, bob], until=at(REPORTED, hours=1))
        # then both raise one alert listing Bob, raised at his swab
        assert alerts_of(late, "pool_positive") == alerts_of(early, "pool_positive")
        [alert] = alerts_of(late, "pool_positive")
        assert alert["details"]["members"] == [BOB]
        assert (alert["due_at"], alert["raised_at"]) == (REPORTED, at(REPORTED, minutes=1))

    def test_a_pool_of_one_member_is_still_a_pool(self) -> None:
        # given a 10-in-1 tube with Alice alone, positive at 12:00
        # when the clock passes 12:00
        alerts, *_ = run(self._pool(ALICE), until=at(REPORTED, hours=1))
        # then pool_positive, not positive
        assert [a["kind"] for a in alerts] == ["pool_positive"]

    def test_single_tube_retests_within_6h_satisfy_every_member(self) -> None:
        # given retests at 12:00 (the report instant) and 18:00:00 (report + 6 h exactly)
        events = [
            *self._pool(ALICE, BOB),
            sampling(ALICE, "tube-retest-a", REPORTED),
            sampling(BOB, "tube-retest-b", at(REPORTED, hours=6)),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=8))
        # then no retest_missed
        assert alerts_of(alerts, "retest_missed") == []

    def test_a_retest_one_second_late_is_missed(self) -> None:
        # given Alice's pool positive at 12:00, her single-tube retest at 18:00:01
        events = [
            *self._pool(ALICE),
            sampling(ALICE, "tube-retest-a", at(REPORTED, hours=6, seconds=1)),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=8))
        # then retest_missed due 18:00 for Alice, naming the pool
        [alert] = alerts_of(alerts, "retest_missed")
        assert alert["due_at"] == alert["raised_at"] == at(REPORTED, hours=6)
        assert (alert["subject"], alert["person_id"], alert["tube_id"]) == (ALICE, ALICE, POOL)

    def test_a_pooled_retest_does_not_satisfy_a_pooled_positive(self) -> None:
        # given Alice's pool positive at 12:00, re-swabbed at 13:00 in another pool
        events = [
            *self._pool(ALICE),
            sampling(ALICE, "pool-0002", at(REPORTED, hours=1), pool_size=10),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=8))
        # then she still needed a single tube
        assert [a["subject"] for a in alerts_of(alerts, "retest_missed")] == [ALICE]

    def test_a_sampling_before_the_report_is_not_a_retest(self) -> None:
        # given Alice's pool positive at 12:00, a single tube swabbed 11:00
        events = [
            *self._pool(ALICE),
            sampling(ALICE, "tube-before", at(REPORTED, hours=-1)),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=8))
        # then retest_missed
        assert [a["subject"] for a in alerts_of(alerts, "retest_missed")] == [ALICE]

    def test_every_member_without_retest_gets_retest_missed_at_report_plus_6h(self) -> None:
        # given three members of a pool positive at 12:00, no retest
        events = self._pool(ALICE, BOB, CAROL)
        # when the clock stops at 17:59:59, then at 18:00:00
        before, *_ = run(events, until=at(REPORTED, hours=6, seconds=-1))
        on_time, *_ = run(events, until=at(REPORTED, hours=6))
        # then three retest_missed at 18:00 and none before
        assert alerts_of(before, "retest_missed") == []
        missed = alerts_of(on_time, "retest_missed")
        assert sorted(a["subject"] for a in missed) == [ALICE, BOB, CAROL]
        assert {a["due_at"] for a in missed} == {at(REPORTED, hours=6)}

    def test_an_invalid_pool_needs_any_new_sampling_and_raises_no_positive(self) -> None:
        # given an invalid pooled result, Alice re-swabbed in another pool, Bob never
        events = [
            *self._pool(ALICE, BOB, result="invalid"),
            sampling(ALICE, "pool-0002", at(REPORTED, hours=6), pool_size=10),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=8))
        # then Bob's retest_missed is the only alert
        assert [(a["kind"], a["subject"]) for a in alerts] == [("retest_missed", BOB)]

    def test_an_invalid_single_tube_needs_a_new_sampling(self) -> None:
        # given Alice's single tube invalid at 12:00; re-swabbed 18:00:01 (late) or
        # 18:00:00 (in time)
        events = [sampling(ALICE, TUBE, COLLECTED), lab(TUBE, REPORTED, "invalid")]
        late = [*events, sampling(ALICE, "tube-0002", at(REPORTED, hours=6, seconds=1))]
        in_time = [*events, sampling(ALICE, "tube-0002", at(REPORTED, hours=6))]
        # when the clock passes 18:00
        missed, *_ = run(late, until=at(REPORTED, hours=8))
        kept, *_ = run(in_time, until=at(REPORTED, hours=8))
        # then retest_missed only for the late one
        assert [(a["kind"], a["due_at"]) for a in missed] == [
            ("retest_missed", at(REPORTED, hours=6))
        ]
        assert kept == []

    def test_a_member_arriving_after_the_result_needs_a_retest_too(self) -> None:
        # given Alice in the pool, the report at 12:00; the clock reaches 13:00 (another
        # person's push), and only then Bob's 09:00 swab in the same pool arrives
        events = [
            sampling(ALICE, POOL, COLLECTED, pool_size=10),
            lab(POOL, REPORTED, "positive"),
            travel("traveller-9", at(REPORTED, hours=1, minutes=5)),
            sampling(BOB, POOL, at(COLLECTED, minutes=1), pool_size=10),
        ]
        # when the clock passes 18:00
        alerts, *_ = run(events, until=at(REPORTED, hours=7))
        # then Bob, like Alice, must retest by 18:00
        missed = alerts_of(alerts, "retest_missed")
        assert sorted(a["subject"] for a in missed) == [ALICE, BOB]
        assert {a["due_at"] for a in missed} == {at(REPORTED, hours=6)}

    def test_a_member_arriving_after_the_retest_window_is_missed_at_once(self) -> None:
        # given the clock at 20:00 (> 18:00, report + 6 h) when Bob's swab arrives
        events = [
            sampling(ALICE, POOL, COLLECTED, pool_size=10),
            lab(POOL, REPORTED, "positive"),
            travel("traveller-9", at(REPORTED, hours=8, minutes=5)),
            sampling(BOB, POOL, at(COLLECTED, minutes=1), pool_size=10),
        ]
        # when nothing else moves the clock
        alerts, *_ = run(events)
        # then Bob's retest_missed, due 18:00, is raised with that line
        missed = alerts_of(alerts, "retest_missed")
        assert sorted(a["subject"] for a in missed) == [ALICE, BOB]
        assert {a["due_at"] for a in missed} == {at(REPORTED, hours=6)}


class TestOrphanResult:
    def test_a_report_with_no_sampling_for_24h_is_an_orphan(self) -> None:
        # given a positive report at 12:00 for a tube nobody was swabbed into
        events = [lab(TUBE, REPORTED, "positive", lab_id="lab-7")]
        # when the clock stops at 11:59:59 the next day, then at 12:00:00
        before, *_ = run(events, until=at(REPORTED, hours=24, seconds=-1))
        on_time, *_ = run(events, until=at(REPORTED, hours=24))
        # then orphan_result due report + 24 h, about the tube, with no district
        assert before == []
        [alert] = on_time
        assert alert["kind"] == "orphan_result"
        assert alert["due_at"] == alert["raised_at"] == at(REPORTED, hours=24)
        assert (alert["subject"], alert["tube_id"]) == (TUBE, TUBE)
        assert alert["person_id"] is None and alert["district"] is None
        assert alert["details"]["lab_id"] == "lab-7"

    def test_a_sampling_arriving_within_24h_prevents_the_orphan(self) -> None:
        # given the report, then the clock reaching 12:00 + 20 h, then the swab
        events = [
            lab(TUBE, REPORTED, "negative"),
            travel("traveller-9", at(REPORTED, hours=20)),
            sampling(ALICE, TUBE, COLLECTED),
        ]
        # when three days pass
        alerts, *_ = run(events, until=at(REPORTED, days=3))
        # then no orphan_result
        assert alerts_of(alerts, "orphan_result") == []

    def test_a_sampling_arriving_after_24h_comes_too_late(self) -> None:
        # given the report at 12:00, the clock past 12:00 the next day, then the swab
        events = [
            lab(TUBE, REPORTED, "negative"),
            travel("traveller-9", at(REPORTED, hours=24, minutes=5)),
            sampling(ALICE, TUBE, COLLECTED),
        ]
        # when three days pass
        alerts, *_ = run(events, until=at(REPORTED, days=3))
        # then the orphan alert was raised at report + 24 h
        assert [a["due_at"] for a in alerts_of(alerts, "orphan_result")] == [
            at(REPORTED, hours=24)
        ]

    def test_a_sampling_taken_after_24h_does_not_prevent_the_orphan_however_late_it_fires(
        self,
    ) -> None:
        # given the report at 12:00 and a swab into the tube at 12:01 the next day
        swab = sampling(ALICE, TUBE, at(REPORTED, hours=24, minutes=1))
        events = [lab(TUBE, REPORTED, "negative"), swab]
        # when the check fires after the swab was applied (nothing moved the clock past
        # 12:00 before it), or before it (another person's push at 12:06 moved it first)
        other = travel("traveller-9", at(REPORTED, hours=24, minutes=6))
        check_late, *_ = run(events, until=at(REPORTED, days=3))
        check_early, *_ = run([*events[:1], other, swab], until=at(REPORTED, days=3))
        # then both raise the same orphan_result: the swab came after report + 24 h
        orphans = [alerts_of(alerts, "orphan_result") for alerts in (check_late, check_early)]
        assert orphans[0] == orphans[1]
        assert [a["due_at"] for a in orphans[0]] == [at(REPORTED, hours=24)]

    def test_a_received_tube_without_report_is_no_orphan(self) -> None:
        # given a received record and no report
        # when three days pass
        alerts, *_ = run([lab(TUBE, REPORTED)], until=at(REPORTED, days=3))
        # then nothing is an orphan (the lab, holding the tube unreported, is silent 3 h
        # later: contract v1.2 §4)
        assert [(a["kind"], a["due_at"]) for a in alerts] == [
            ("lab_silent", at(REPORTED, hours=3))]


class TestTwoReports:
    """A tube reported twice: the first to arrive is its result, but a positive is never
    hidden by another result that came first (§4: a tube reported positive is positive)."""

    @pytest.mark.parametrize("order", ["event order", "swapped"])
    def test_a_positive_reported_two_minutes_before_a_negative_is_raised_in_either_order(
        self, order: str
    ) -> None:
        # given a single tube reported positive at 11:58 and negative at 12:00
        reports = [lab(TUBE, at(REPORTED, minutes=-2), "positive"),
                   lab(TUBE, REPORTED, "negative")]
        if order == "swapped":  # the negative read first, within the allowed lateness
            reports.reverse()
        alerts, *_ = run([sampling(ALICE, TUBE, COLLECTED), *reports],
                         until=at(REPORTED, days=2))
        # then one positive, due at the positive report, whichever was read first
        [positive] = alerts_of(alerts, "positive")
        assert (positive["subject"], positive["due_at"]) == (ALICE, at(REPORTED, minutes=-2))

    def test_a_pooled_tube_reported_invalid_then_positive_lists_its_members(self) -> None:
        events = [sampling(ALICE, POOL, COLLECTED, pool_size=10),
                  sampling(BOB, POOL, at(COLLECTED, minutes=1), pool_size=10),
                  lab(POOL, REPORTED, "invalid"), lab(POOL, at(REPORTED, minutes=30), "positive")]
        alerts, *_ = run(events, until=at(REPORTED, hours=1))
        [pool] = alerts_of(alerts, "pool_positive")
        assert pool["details"]["members"] == sorted([ALICE, BOB])
        assert pool["due_at"] == at(REPORTED, minutes=30)



class TestPoolOverflow:
    def test_an_eleventh_member_of_a_10_tube_is_rejected_and_processing_goes_on(self) -> None:
        # given ten members swabbed into a 10-in-1 tube, then an eleventh, then a push
        members = [f"member-{i:04d}" for i in range(11)]
        swabs = [
            sampling(person, POOL, at(COLLECTED, minutes=i), pool_size=10)
            for i, person in enumerate(members)
        ]
        events = [*swabs, lab(POOL, REPORTED, "positive"), travel("traveller-9", REPORTED)]
        # when the clock passes 15:00
        alerts, _, letters, stats = run(events, until=at(REPORTED, hours=3))
        # then line 11 is a dead letter with reason pool_overflow
        [letter] = letters
        assert (letter["reason"], letter["line"]) == ("pool_overflow", 11)
        assert members[10] in letter["original"]
        # and the run went on: the pool lists its ten members, the push lapsed
        [pool] = alerts_of(alerts, "pool_positive")
        assert pool["details"]["members"] == sorted(members[:10])
        assert [a["subject"] for a in alerts_of(alerts, "unlocated")] == ["traveller-9"]
        assert stats["rejected:pool_overflow"] == 1
        # and it is counted as rejected only: read = applied + rejected
        applied = sum(n for k, n in stats.items() if k.startswith("applied:"))
        assert (stats["events_read"], applied) == (13, 12)

    def test_the_same_person_twice_in_a_tube_is_one_member(self) -> None:
        # given Alice swabbed twice into one single tube (09:00, 09:01)
        events = [
            sampling(ALICE, TUBE, COLLECTED),
            sampling(ALICE, TUBE, at(COLLECTED, minutes=1)),
            lab(TUBE, REPORTED, "negative"),
        ]
        # when the tube is reported negative
        alerts, _, letters, _ = run(events, until=at(REPORTED, days=2))
        # then one member: no overflow, no alert
        assert letters == [] and alerts == []

    def test_a_second_person_in_a_single_tube_overflows(self) -> None:
        # given Alice then Bob into a single tube
        events = [sampling(ALICE, TUBE, COLLECTED), sampling(BOB, TUBE, at(COLLECTED, minutes=1))]
        # when the file is replayed
        _, _, letters, _ = run(events)
        # then line 2 is a pool_overflow dead letter
        assert [(d["reason"], d["line"]) for d in letters] == [("pool_overflow", 2)]
