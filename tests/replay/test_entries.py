"""Entry checkpoints, risk areas and sentinel clinics (CONTRACT.md §4, v1.1), through replay."""

from __future__ import annotations

import orjson
import pytest
from helpers import (
    T0,
    alerts_of,
    area,
    at,
    checkpoint,
    clinic,
    followup,
    run,
    sampling,
    travel,
)

from closedloop.schemas.policy import Policy, PolicyError, policy_from_mapping

DRIVER = "driver-0001"
HOURS_48 = 48 * 3600


class TestProof:
    """``entry_without_proof``: none, from the future, or older than 48 h at the entry."""

    def test_a_proof_exactly_48_hours_old_is_valid(self) -> None:
        # given an entry at 09:00 showing a test sampled 48 h before, and a landing test
        events = [checkpoint(DRIVER, T0, at(T0, seconds=-HOURS_48)),
                  sampling(DRIVER, "tb-1", at(T0, minutes=30))]
        # when the clock passes the landing window
        alerts, *_ = run(events, until=at(T0, hours=3))
        # then nothing is raised
        assert alerts == []

    def test_a_proof_one_second_older_raises_due_at_the_entry(self) -> None:
        events = [checkpoint(DRIVER, T0, at(T0, seconds=-HOURS_48 - 1), checkpoint_id="g2-3",
                             role="passenger", district="jiading"),
                  sampling(DRIVER, "tb-1", at(T0, minutes=30))]
        alerts, *_ = run(events, until=at(T0, hours=3))
        [alert] = alerts_of(alerts, "entry_without_proof")
        assert alert["due_at"] == T0 and alert["raised_at"] == T0
        assert alert["subject"] == alert["person_id"] == DRIVER
        assert alert["district"] == "jiading"
        assert alert["details"] == {"checkpoint_id": "g2-3", "role": "passenger",
                                    "proof_age_hours": 48.0}

    def test_no_proof_shown_raises_with_a_null_age(self) -> None:
        alerts, *_ = run([checkpoint(DRIVER, T0, None)], until=at(T0, minutes=10))
        [alert] = alerts_of(alerts, "entry_without_proof")
        assert alert["details"]["proof_age_hours"] is None

    def test_a_proof_from_after_the_entry_is_no_proof(self) -> None:
        alerts, *_ = run([checkpoint(DRIVER, T0, at(T0, hours=1))], until=at(T0, minutes=10))
        [alert] = alerts_of(alerts, "entry_without_proof")
        assert alert["details"]["proof_age_hours"] == -1.0

    def test_a_proof_a_second_after_the_entry_is_aged_zero_not_minus_zero(self) -> None:
        alerts, *_ = run([checkpoint(DRIVER, T0, at(T0, seconds=1))], until=at(T0, minutes=10))
        [alert] = alerts_of(alerts, "entry_without_proof")
        assert b'"proof_age_hours":0.0' in orjson.dumps(alert["details"])

    def test_the_proof_is_judged_only_when_the_clock_passes_the_entry(self) -> None:
        # the clock stops one second before the entry: nothing yet
        alerts, *_ = run([checkpoint(DRIVER, T0, None)], until=at(T0, seconds=-1))
        assert alerts == []


class TestLandingTest:
    """``landing_test_missed``: no sampling in [entry, entry + 2 h]."""

    def test_a_landing_test_exactly_at_the_end_of_the_window_counts(self) -> None:
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5)),
                  sampling(DRIVER, "tb-1", at(T0, hours=2))]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert alerts_of(alerts, "landing_test_missed") == []

    def test_a_landing_test_exactly_at_the_entry_counts(self) -> None:
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5)), sampling(DRIVER, "tb-1", T0)]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert alerts_of(alerts, "landing_test_missed") == []

    def test_a_test_one_second_late_or_before_the_entry_does_not(self) -> None:
        events = [sampling(DRIVER, "tb-0", at(T0, seconds=-1)),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), checkpoint_id="rail-7"),
                  sampling(DRIVER, "tb-1", at(T0, hours=2, seconds=1))]
        alerts, *_ = run(events, until=at(T0, hours=3))
        [alert] = alerts_of(alerts, "landing_test_missed")
        assert alert["due_at"] == at(T0, hours=2)
        assert alert["details"] == {"checkpoint_id": "rail-7", "role": "driver"}

    def test_one_alert_per_checkpoint_record(self) -> None:
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5)),
                  checkpoint(DRIVER, at(T0, hours=5), at(T0, hours=-5))]
        alerts, *_ = run(events, until=at(T0, hours=8))
        dues = [a["due_at"] for a in alerts_of(alerts, "landing_test_missed")]
        assert dues == [at(T0, hours=2), at(T0, hours=7)]


class TestRiskAreas:
    """A county high or medium at the entry puts the person under the travel-push loop."""

    def test_a_high_county_pushes_the_person_from_the_checkpoint(self) -> None:
        events = [area("320505", at(T0, days=-1), "high"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["310115", "320505"],
                             district="jiading"),
                  sampling(DRIVER, "tb-1", at(T0, minutes=20))]
        alerts, *_ = run(events, until=at(T0, hours=3))
        [alert] = alerts_of(alerts, "unlocated")
        assert alert["due_at"] == at(T0, hours=2)
        assert alert["district"] == "jiading"
        assert alert["details"] == {"pushed_at": T0, "locate_within_hours": 2.0,
                                    "risk": "high", "source": "checkpoint"}

    def test_a_travel_push_says_its_source_is_travel(self) -> None:
        alerts, *_ = run([travel(DRIVER, T0)], until=at(T0, hours=3))
        [alert] = alerts_of(alerts, "unlocated")
        assert alert["details"]["source"] == "travel"

    def test_an_area_record_arriving_just_after_the_entry_it_governs_counts(self) -> None:
        # the area record (effective before the entry) arrives after the checkpoint record,
        # while the clock has not yet passed the entry
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["320505"]),
                  area("320505", at(T0, minutes=-1), "medium")]
        alerts, *_ = run(events, until=at(T0, hours=3))
        [alert] = alerts_of(alerts, "unlocated")
        assert alert["details"]["risk"] == "medium"

    def test_an_area_record_arriving_after_the_clock_passed_the_entry_is_too_late(
            self) -> None:
        # a sampling 10 min after the entry moves the clock (lateness 5 min) past the entry
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["320505"]),
                  sampling("someone-else", "tb-9", at(T0, minutes=10)),
                  area("320505", at(T0, minutes=-1), "high")]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert alerts_of(alerts, "unlocated") == []

    def test_a_level_that_takes_effect_after_the_entry_does_not_count(self) -> None:
        events = [area("320505", at(T0, seconds=1), "high"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["320505"])]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert alerts_of(alerts, "unlocated") == []

    def test_a_county_that_turned_low_before_the_entry_pushes_nobody(self) -> None:
        events = [area("320505", at(T0, days=-3), "high"),
                  area("320505", at(T0, hours=-1), "low"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["320505"])]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert alerts_of(alerts, "unlocated") == []

    def test_a_county_that_turns_low_after_the_entry_still_pushes(self) -> None:
        events = [area("320505", at(T0, days=-3), "high"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["320505"]),
                  area("320505", at(T0, minutes=1), "low")]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert len(alerts_of(alerts, "unlocated")) == 1

    def test_the_highest_level_of_several_counties_picks_the_regimen_and_origin(
            self) -> None:
        events = [area("A-1", at(T0, days=-1), "medium"), area("B-2", at(T0, days=-1), "high"),
                  area("C-3", at(T0, days=-1), "low"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["A-1", "B-2", "C-3"]),
                  followup(DRIVER, at(T0, hours=1), "located")]
        # regimen high: tests on days 1, 2, 3, 5, 7; day 1 (09-06) ends at 09-07 00:00
        alerts, *_ = run(events, until=at(T0, days=2))
        tests = alerts_of(alerts, "test_missed")
        assert [a["details"]["regimen_day"] for a in tests] == [1, 2]
        assert {a["details"]["requirement"] for a in tests} == {"regimen:high"}
        assert {a["details"]["source"] for a in tests} == {"checkpoint"}

    def test_ties_between_area_records_at_one_instant_go_to_the_larger_event_id(
            self) -> None:
        events = [area("A-1", at(T0, hours=-1), "high", event_id="a-2"),
                  area("A-1", at(T0, hours=-1), "low", event_id="a-1"),
                  checkpoint(DRIVER, T0, at(T0, hours=-5), visited=["A-1"])]
        alerts, *_ = run(events, until=at(T0, hours=3))
        assert len(alerts_of(alerts, "unlocated")) == 1


class TestSentinel:
    """``sentinel_untested``: no sampling within the facility kind's window of the visit."""

    def test_a_pharmacy_visit_has_24_hours(self) -> None:
        events = [clinic(DRIVER, T0, "pharmacy", reason="antipyretic"),
                  sampling(DRIVER, "tb-1", at(T0, hours=24))]
        alerts, *_ = run(events, until=at(T0, hours=30))
        assert alerts_of(alerts, "sentinel_untested") == []

    def test_a_pharmacy_visit_untested_for_24_hours_raises_at_the_window_end(self) -> None:
        events = [clinic(DRIVER, T0, "pharmacy", reason="antipyretic", facility_id="ph-8",
                         district="xuhui"),
                  sampling(DRIVER, "tb-1", at(T0, hours=24, seconds=1))]
        alerts, *_ = run(events, until=at(T0, hours=30))
        [alert] = alerts_of(alerts, "sentinel_untested")
        assert alert["due_at"] == at(T0, hours=24)
        assert alert["district"] == "xuhui"
        assert alert["details"] == {"facility_id": "ph-8", "facility_kind": "pharmacy",
                                    "reason": "antipyretic"}

    def test_a_hospital_visit_has_2_hours(self) -> None:
        events = [clinic(DRIVER, T0, "hospital"), sampling(DRIVER, "tb-1", at(T0, hours=3))]
        alerts, *_ = run(events, until=at(T0, hours=4))
        assert [a["due_at"] for a in alerts_of(alerts, "sentinel_untested")] == [at(T0, hours=2)]


class TestDailyReport:
    """The v1.1 columns, in the district of the checkpoint or facility."""

    def test_entries_visits_and_their_lapses_are_counted(self) -> None:
        events = [area("320505", at(T0, days=-1), "high"),
                  checkpoint(DRIVER, T0, None, visited=["320505"], district="jiading"),
                  checkpoint("passenger-01", T0, at(T0, hours=-3), district="jiading",
                             role="passenger"),
                  sampling("passenger-01", "tb-2", at(T0, hours=1)),
                  clinic("patient-0001", T0, "clinic", district="xuhui"),
                  clinic("patient-0002", T0, "pharmacy", district="xuhui"),
                  sampling("patient-0002", "tb-3", at(T0, hours=3))]
        _, reports, *_ = run(events, until=at(T0, days=1))
        today = {r["district"]: r for r in reports if r["date"] == "2022-09-06"}
        assert {k: today["jiading"][k] for k in (
            "checkpoint_entries", "entries_without_proof", "landing_tests_missed", "pushed",
            "sentinel_visits")} == {
            "checkpoint_entries": 2, "entries_without_proof": 1, "landing_tests_missed": 1,
            "pushed": 1, "sentinel_visits": 0}
        assert today["xuhui"]["sentinel_visits"] == 2
        assert today["xuhui"]["sentinel_untested"] == 1

    def test_two_lapses_sharing_one_alert_count_each_in_its_own_district(self) -> None:
        # given one driver entering at two checkpoints at once, with no proof and no test
        events = [checkpoint(DRIVER, T0, None, checkpoint_id="cp-a", district="jiading",
                             event_id="chk-a"),
                  checkpoint(DRIVER, T0, None, checkpoint_id="cp-b", district="xuhui",
                             event_id="chk-b"),
                  # and a pharmacy visit in xuhui (24 h) and, 22 h later, a hospital visit in
                  # jiading (2 h): both windows end at the same second, nobody samples them
                  clinic("patient-0001", T0, "pharmacy", district="xuhui", facility_id="ph-1",
                         event_id="cl-1"),
                  clinic("patient-0001", at(T0, hours=22), "hospital", district="jiading",
                         facility_id="ho-1", event_id="cl-2")]
        alerts, reports, *_ = run(events, until=at(T0, days=2))
        # then each (kind, subject, due_at) is one alert (§5), the first record's...
        [untested] = alerts_of(alerts, "sentinel_untested")
        assert untested["details"]["facility_id"] == "ph-1"
        assert len(alerts_of(alerts, "entry_without_proof")) == 1
        assert len(alerts_of(alerts, "landing_test_missed")) == 1
        # ...and each record's lapse counts once, in its own district's report
        counted = {(r["date"], r["district"]): r for r in reports}
        for district in ("xuhui", "jiading"):
            assert counted["2022-09-06", district]["entries_without_proof"] == 1
            assert counted["2022-09-06", district]["landing_tests_missed"] == 1
        assert counted["2022-09-07", "xuhui"]["sentinel_untested"] == 1
        assert counted["2022-09-07", "jiading"]["sentinel_untested"] == 1

    def test_a_repeated_checkpoint_record_counts_once(self) -> None:
        entry = checkpoint(DRIVER, T0, at(T0, hours=-3), event_id="chk-1")
        _, reports, _, stats = run([entry, entry], until=at(T0, days=1))
        [report] = [r for r in reports if r["date"] == "2022-09-06"]
        assert report["checkpoint_entries"] == 1
        assert stats["duplicates_ignored"] == 1


class TestPolicyKeys:
    """``checkpoint.proof_valid``, ``checkpoint.landing_test_within`` and
    ``sentinel_test_within.<kind>`` change the windows."""

    @staticmethod
    def _policy(**tables: dict[str, str]) -> Policy:
        return policy_from_mapping(tables)

    def test_a_shorter_proof_validity(self) -> None:
        pol = self._policy(checkpoint={"proof_valid": "24h"})
        events = [checkpoint(DRIVER, T0, at(T0, hours=-24, seconds=-1))]
        alerts, *_ = run(events, until=at(T0, minutes=10), pol=pol)
        [alert] = alerts_of(alerts, "entry_without_proof")
        assert alert["details"]["proof_age_hours"] == 24.0

    def test_a_longer_landing_window(self) -> None:
        pol = self._policy(checkpoint={"landing_test_within": "4h"})
        events = [checkpoint(DRIVER, T0, at(T0, hours=-5)),
                  sampling(DRIVER, "tb-1", at(T0, hours=3))]
        alerts, *_ = run(events, until=at(T0, hours=6), pol=pol)
        assert alerts_of(alerts, "landing_test_missed") == []
        alerts, *_ = run(events[:1], until=at(T0, hours=6), pol=pol)
        assert [a["due_at"] for a in alerts_of(alerts, "landing_test_missed")] == [
            at(T0, hours=4)]

    def test_a_facility_kinds_window(self) -> None:
        pol = self._policy(sentinel_test_within={"clinic": "6h"})
        alerts, *_ = run([clinic(DRIVER, T0, "clinic")], until=at(T0, hours=7), pol=pol)
        assert [a["due_at"] for a in alerts_of(alerts, "sentinel_untested")] == [
            at(T0, hours=6)]

    def test_an_unknown_facility_kind_in_the_policy_is_refused(self) -> None:
        with pytest.raises(PolicyError, match=r"sentinel_test_within\.dentist"):
            self._policy(sentinel_test_within={"dentist": "1h"})
