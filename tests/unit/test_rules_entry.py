"""Data entry (CONTRACT.md v1.2 §4): late sources and silent labs, as pure rules at their edges.

Default policy: entry_within sampling 2 h, lab 2 h, followup 4 h; late_entries_min 10;
late_share 0.2; lab_silent_after 3 h; daily cut-off 22:00 Asia/Shanghai.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime
from fractions import Fraction
from typing import Any

import msgspec
import pytest

from closedloop.agents import entry
from closedloop.agents.calendar import Calendar
from closedloop.schemas.events import MODELS, Event
from closedloop.schemas.policy import Policy, default_policy

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
HOUR, MINUTE = 3600, 60


def at(text: str) -> int:
    """Epoch seconds of a local instant: ``at("09-06 09:30")`` is 2022-09-06T09:30+08:00."""
    return int(datetime.fromisoformat(f"2022-{text.replace(' ', 'T')}:00+08:00").timestamp())


CUTOFF_6 = at("09-06 22:00")  # the cut-off closing 2022-09-06
CUTOFF_7 = at("09-07 22:00")


def policy(**changes: Any) -> Policy:
    return dataclasses.replace(POLICY, **changes)


def event(topic: str, **fields: Any) -> Event:
    base: dict[str, Any] = {"event_id": "e-1", "occurred_at": "2022-09-06T09:00:00+08:00"}
    return msgspec.convert(base | fields, MODELS[topic])


class TestSourceAndLag:
    def test_each_topic_names_its_source(self) -> None:
        sampling = event("sampling", person_id="pz:00000001", tube_id="tb-1", site_id="site-17",
                         district="xuhui", pool_size=1)
        assert entry.source_of(sampling) == "site-17"
        assert entry.source_of(event("lab", tube_id="tb-1", lab_id="lab-2",
                                     status="received")) == "lab-2"
        assert entry.source_of(event("followup", person_id="pz:00000001", kind="visit",
                                     worker_id="gw-3")) == "gw-3"
        # a follow-up without its worker, and a travel push, have no source
        assert entry.source_of(event("followup", person_id="pz:00000001",
                                     kind="visit")) is None
        assert entry.source_of(event("travel", person_id="pz:00000001", district="xuhui",
                                     arrived_at="2022-09-06T08:00:00+08:00", origin="x",
                                     risk="high")) is None
        assert entry.subject_of("sampling", "site-17") == "sampling:site-17"

    def test_the_lag_is_floored_at_zero(self) -> None:
        assert entry.entry_lag(at("09-06 10:00"), at("09-06 09:00")) == HOUR
        assert entry.entry_lag(at("09-06 08:59"), at("09-06 09:00")) == 0

    def test_a_lag_of_exactly_entry_within_is_on_time(self) -> None:
        assert not entry.is_late(POLICY, "sampling", 2 * HOUR)
        assert entry.is_late(POLICY, "sampling", 2 * HOUR + 1)
        assert not entry.is_late(POLICY, "followup", 4 * HOUR)
        assert entry.is_late(POLICY, "checkpoint", HOUR + 1)
        # an operator's action has no entry_within: never late
        assert not entry.is_late(POLICY, "action", 100 * HOUR)


class TestTheDayARecordCountsIn:
    def test_a_receipt_at_the_cut_off_counts_in_it_one_second_later_in_the_next(self) -> None:
        assert entry.counting_cutoff(CAL, CUTOFF_6, None, None) == CUTOFF_6
        assert entry.counting_cutoff(CAL, CUTOFF_6 + 1, None, None) == CUTOFF_7
        assert entry.counting_cutoff(CAL, at("09-06 00:00"), None, None) == CUTOFF_6

    def test_a_record_read_after_its_cut_off_was_judged_counts_in_the_next(self) -> None:
        # received at 21:00 but read once the clock had passed 22:00 and judged the day
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), CUTOFF_6, None) == CUTOFF_7
        # judged days further on: the first not judged
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), CUTOFF_7, None) == at("09-08 22:00")

    def test_a_cut_off_the_clock_has_passed_is_not_counted_in_even_unjudged(self) -> None:
        # a source's first record, received at 21:00 but read when the clock is at 22:30:
        # the source never judged 09-06 (it had nothing then), yet the clock passed it
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), None, at("09-06 22:30")) \
            == CUTOFF_7
        # the clock exactly at the cut-off has fired it, as every deadline at its instant
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), None, CUTOFF_6) == CUTOFF_7
        # one second before it, the day is still open
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), None, CUTOFF_6 - 1) == CUTOFF_6
        # a clock days ahead: the first cut-off after it
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), None, at("09-09 23:00")) \
            == at("09-10 22:00")
        # judged ahead of the clock (a source judged by a clock that has since been read
        # as earlier, e.g. None): the judged day stays judged
        assert entry.counting_cutoff(CAL, at("09-06 21:00"), CUTOFF_7, CUTOFF_6 - 1) \
            == at("09-08 22:00")

    def test_on_entry_counts_by_the_clock_at_reading(self) -> None:
        st = entry.SourceState()
        due = entry.on_entry(POLICY, CAL, st, "sampling", at("09-06 21:00"),
                             at("09-06 18:00"), "xuhui", at("09-06 22:00"))
        assert due == CUTOFF_7 and list(st.days) == [CUTOFF_7]


def source_day(late: int, on_time: int, *, late_lag: int = 3 * HOUR,
               districts: list[str | None] | None = None, topic: str = "sampling",
               rules: Policy = POLICY) -> entry.SourceState:
    """A source's state holding ``late`` late and ``on_time`` punctual records of 09-06."""
    st = entry.SourceState()
    names = districts or ["xuhui"] * (late + on_time)
    for n in range(late + on_time):
        lag = late_lag if n < late else 30 * MINUTE
        occurred = at("09-06 08:00") + n * MINUTE
        due = entry.on_entry(rules, CAL, st, topic, occurred + lag, occurred, names[n], None)
        assert due == CUTOFF_6
    return st


class TestLateEntries:
    def test_exactly_late_entries_min_records_exactly_late_share_late_alerts(self) -> None:
        # given 10 records of site-17 on 09-06, 2 of them late: 2/10 is exactly 0.2
        st = source_day(late=2, on_time=8)
        # when the cut-off is judged
        raised, due = entry.judge_day(POLICY, st, "sampling", "site-17", CUTOFF_6)
        # then one alert, and the state has nothing more to judge
        assert raised is not None and due is None
        assert (raised.kind, raised.subject, raised.due, raised.district) == (
            "late_entries", "sampling:site-17", CUTOFF_6, "xuhui")
        assert raised.details == {
            "topic": "sampling", "source": "site-17", "entries": 10, "late": 2,
            "late_share": 0.2, "lag_p90_minutes": 180.0, "worst_lag_minutes": 180.0}
        assert st.days == {} and st.judged == CUTOFF_6

    def test_one_record_short_of_late_entries_min_raises_nothing(self) -> None:
        st = source_day(late=9, on_time=0)  # all late, but 9 < 10
        assert entry.judge_day(POLICY, st, "sampling", "site-17", CUTOFF_6)[0] is None

    def test_just_under_late_share_raises_nothing(self) -> None:
        # 2 of 11 is 0.18..., under 0.2
        st = source_day(late=2, on_time=9)
        assert entry.judge_day(POLICY, st, "sampling", "site-17", CUTOFF_6)[0] is None

    @pytest.mark.parametrize(("share", "late", "entries"), [
        (Fraction(3, 10), 3, 10), (Fraction(29, 100), 29, 100), (Fraction(7, 10), 7, 10)])
    def test_the_share_is_compared_exactly(self, share: Fraction, late: int,
                                           entries: int) -> None:
        rules = policy(late_share=share)
        at_it = source_day(late=late, on_time=entries - late, rules=rules)
        assert entry.judge_day(rules, at_it, "sampling", "s", CUTOFF_6)[0] is not None
        under = source_day(late=late - 1, on_time=entries - late + 1, rules=rules)
        assert entry.judge_day(rules, under, "sampling", "s", CUTOFF_6)[0] is None

    def test_the_district_most_records_name_ties_to_the_smallest(self) -> None:
        tie = source_day(late=10, on_time=0, districts=["b", "a", "b", "a", *[None] * 6])
        raised = entry.judge_day(POLICY, tie, "sampling", "s", CUTOFF_6)[0]
        assert raised is not None and raised.district == "a"
        nameless = source_day(late=10, on_time=0, districts=[None] * 10)
        raised = entry.judge_day(POLICY, nameless, "lab", "lab-1", CUTOFF_6)[0]
        assert raised is not None and raised.district is None

    def test_decimals_are_rounded_half_up(self) -> None:
        # given 16 records, 2 late by 45 s more than entry_within... with late_share 0.1
        rules = policy(late_share=Fraction(1, 10))
        st = source_day(late=2, on_time=14, late_lag=2 * HOUR + 45, rules=rules)
        raised = entry.judge_day(rules, st, "sampling", "s", CUTOFF_6)[0]
        assert raised is not None
        assert raised.details["late_share"] == 0.13  # 2/16 = 0.125
        assert raised.details["worst_lag_minutes"] == 120.8  # 120.75
        # nearest rank: the 15th of 16 lags (14 of 30 min, then the 2 late ones)
        assert raised.details["lag_p90_minutes"] == 120.8

    def test_a_day_with_records_in_two_days_judges_each_at_its_cut_off(self) -> None:
        st = entry.SourceState()
        entry.on_entry(POLICY, CAL, st, "lab", at("09-06 12:00"), at("09-06 11:00"), None, None)
        due = entry.on_entry(POLICY, CAL, st, "lab", at("09-07 12:00"), at("09-06 11:00"), None,
                             None)
        assert due == CUTOFF_6
        assert entry.judge_day(POLICY, st, "lab", "lab-1", CUTOFF_6) == (None, CUTOFF_7)
        # a record received on 09-06 but read now counts on 09-07: the 09-06 day is judged
        assert entry.on_entry(POLICY, CAL, st, "lab", at("09-06 21:59"), at("09-06 21:00"),
                              None, None) == CUTOFF_7
        assert len(st.days[CUTOFF_7].lags) == 2

    def test_nearest_rank(self) -> None:
        assert entry.nearest_rank_p90([5]) == 5
        assert entry.nearest_rank_p90(list(range(1, 11))) == 9
        assert entry.nearest_rank_p90(list(range(1, 12))) == 10  # ceil(9.9) = 10


def lab_state(*records: tuple[str, str, str]) -> entry.LabState:
    """A lab's state after ``(tube, status, local instant)`` records, in the order given."""
    st = entry.LabState()
    for tube, status, when in records:
        entry.on_lab(POLICY, st, tube, status, at(when))
    return st


def iso(when: str) -> str:
    return CAL.iso(at(when))


class TestLabSilent:
    def test_a_tube_waiting_three_hours_with_no_report_is_a_silence(self) -> None:
        # given a tube received at 08:00 and nothing else
        st = lab_state(("t1", "received", "09-06 08:00"))
        # then the silence begins at 11:00
        assert entry.silence_start(POLICY, st) == at("09-06 11:00")
        # when the clock reaches it
        raised, due = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 11:00"))
        (alert,) = raised
        assert (alert.kind, alert.subject, alert.due, alert.district) == (
            "lab_silent", "lab-1", at("09-06 11:00"), None)
        assert alert.details == {"pending_tubes": 1, "last_reported_at": None}
        # and the same silence is not raised again
        assert due is None
        assert entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 20:00"))[0] == []

    def test_it_begins_three_hours_after_the_last_report(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00"))
        assert entry.silence_start(POLICY, st) == at("09-06 12:00")
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        assert alert.details == {"pending_tubes": 1, "last_reported_at": iso("09-06 09:00")}

    def test_a_silence_ended_one_second_before_it_would_be_raised_raises_nothing(self) -> None:
        # given the silence due at 12:00, and a report at 11:59:59
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00"))
        entry.on_lab(POLICY, st, "t3", "reported", at("09-06 11:59") + 59)
        # when the clock reaches 12:00
        raised, due = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        # then nothing, and the next possible silence is three hours after that report
        assert raised == [] and due == at("09-06 14:59") + 59

    def test_a_report_at_the_instant_itself_ends_it(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00"),
                       ("t3", "reported", "09-06 12:00"))
        assert entry.silence_start(POLICY, st) == at("09-06 15:00")

    def test_the_next_report_ends_it_and_a_later_silence_raises_a_new_alert(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"))
        first, _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        # the lab reports another tube at 13:00 (t1 still waits), then nothing more
        entry.on_lab(POLICY, st, "t2", "reported", at("09-06 13:00"))
        second, _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 16:00"))
        assert [a.due for a in first] == [at("09-06 11:00")]
        assert [a.due for a in second] == [at("09-06 16:00")]
        assert second[0].details["last_reported_at"] == iso("09-06 13:00")
        # and once t1 is reported there is nothing left to wait for
        entry.on_lab(POLICY, st, "t1", "reported", at("09-06 17:00"))
        assert entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 23:00")) == ([], None)

    def test_only_tubes_received_three_hours_before_count_as_pending(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "received", "09-06 10:00"),
                       ("t3", "received", "09-06 08:30"), ("t3", "reported", "09-06 09:00"))
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        # t3 reported at 09:00: the silence begins at 12:00; t2 (10:00) waits only two hours
        assert alert.due == at("09-06 12:00")
        assert alert.details["pending_tubes"] == 1

    def test_a_result_before_its_receipt_is_no_waiting_tube(self) -> None:
        # the report arrives first, the received record after it
        st = lab_state(("t1", "reported", "09-06 10:00"), ("t1", "received", "09-06 08:00"))
        assert entry.silence_start(POLICY, st) is None

    def test_arrival_order_within_the_lateness_changes_nothing(self) -> None:
        records = [("t1", "received", "09-06 08:00"), ("t2", "received", "09-06 08:02"),
                   ("t2", "reported", "09-06 09:00"), ("t3", "reported", "09-06 09:03")]
        forward = lab_state(*records)
        backward = lab_state(*reversed(records))
        clock = at("09-07 00:00")
        assert entry.fire_silence(POLICY, CAL, forward, "l", clock) == entry.fire_silence(
            POLICY, CAL, backward, "l", clock)

    def test_the_state_keeps_only_what_a_later_silence_needs(self) -> None:
        st = entry.LabState()
        for n in range(200):  # a lab reporting every tube within the hour, all day
            entry.on_lab(POLICY, st, f"t{n}", "received", at("09-06 06:00") + n * 60)
            entry.on_lab(POLICY, st, f"t{n}", "reported", at("09-06 06:30") + n * 60)
        raised, _ = entry.fire_silence(POLICY, CAL, st, "l", at("09-06 12:00"))
        assert raised == []
        # the latest report before the clock, and no tube: every one was reported
        assert st.reports == [at("09-06 06:30") + 199 * 60] and st.tubes == {}

    def test_read_with_its_clock_a_busy_lab_keeps_only_its_tubes_in_flight(self) -> None:
        # a lab that is never silent reaches no deadline, so no firing forgets for it: the
        # clock it is read at does
        st = entry.LabState()
        start = at("09-06 06:00")
        for n in range(2000):  # a tube a minute, each reported 30 min after it arrived
            clock = start + n * 60 - POLICY.allowed_lateness
            for tube, status in ((f"t{n}", "received"), (f"t{n - 30}", "reported"))[
                    :2 if n >= 30 else 1]:
                due = entry.on_lab(POLICY, st, tube, status, start + n * 60, clock)
                assert due is not None and due > clock
        # 30 in flight, and those reported since the last sweep
        assert len(st.tubes) <= 30 + entry.SWEEP_EVERY // 60 + 5 and len(st.reports) <= 10

    def test_a_tube_reported_before_the_clock_and_received_later_is_not_waiting(self) -> None:
        # its report is long before the clock when its received record comes: forgetting
        # the tube then would make it wait for ever
        st = entry.LabState()
        entry.on_lab(POLICY, st, "t1", "reported", at("09-06 10:00"), at("09-06 09:55"))
        entry.on_lab(POLICY, st, "t2", "received", at("09-06 13:00"), at("09-06 13:55"))
        entry.on_lab(POLICY, st, "t1", "received", at("09-06 12:30"), at("09-06 13:55"))
        raised, _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 16:00"))
        assert [(a.due, a.details["pending_tubes"]) for a in raised] == [(at("09-06 16:00"), 1)]

    @pytest.mark.parametrize("seed", range(6))
    def test_the_clock_at_reading_changes_no_silence(self, seed: int) -> None:
        # a lab with stalls, read within the allowed lateness of its records' order
        rng = random.Random(seed)
        records: list[tuple[int, str, str]] = []
        when = at("09-06 06:00")
        for n in range(400):
            when += rng.choice([60, 300, 900, 3 * 3600, 5 * 3600]) if rng.random() < 0.1 \
                else rng.randrange(30, 600)
            records.append((when, f"t{n}", "received"))
            if rng.random() < 0.97:
                records.append((when + rng.randrange(600, 6 * 3600), f"t{n}", "reported"))
        records.sort()
        arrival = sorted(records, key=lambda r: r[0] + rng.randrange(POLICY.allowed_lateness))
        assert self._silences(arrival, with_clock=True) == self._silences(arrival,
                                                                            with_clock=False)

    @pytest.mark.parametrize("seed", range(8))
    def test_what_a_search_remembers_never_hides_a_silence(self, seed: int) -> None:
        # records in any order at all: after each, the next silence is what a search over
        # the same facts without its memory of quiet gaps finds
        rng = random.Random(seed)
        records = []
        for n in range(60):
            received = at("09-06 06:00") + rng.randrange(0, 24 * 3600)
            records.append((f"t{n}", "received", received))
            if rng.random() < 0.8:
                records.append((f"t{n}", "reported", received + rng.randrange(0, 5 * 3600)))
        rng.shuffle(records)
        st = entry.LabState()
        for tube, status, when in records:
            found = entry.on_lab(POLICY, st, tube, status, when)
            fresh = msgspec.structs.replace(st, quiet_through=None)
            assert found == entry.silence_start(POLICY, fresh)

    @staticmethod
    def _silences(records: list[tuple[int, str, str]], with_clock: bool
                  ) -> list[tuple[int, dict[str, Any]]]:
        st, raised, due, latest = entry.LabState(), [], None, 0
        for when, tube, status in records:
            latest = max(latest, when)
            clock = latest - POLICY.allowed_lateness
            due = entry.on_lab(POLICY, st, tube, status, when, clock if with_clock else None)
            while due is not None and due <= clock:
                fired, due = entry.fire_silence(POLICY, CAL, st, "lab-1", clock)
                raised.extend(fired)
        raised.extend(entry.fire_silence(POLICY, CAL, st, "lab-1", latest + 86400)[0])
        return [(alert.due, alert.details) for alert in raised]


class TestASilentLabsEscalation:
    """lab_silent needs an operator unless the lab reports again, which ends the silence."""

    def silent_from_11(self) -> entry.LabState:
        st = lab_state(("t1", "received", "09-06 08:00"))
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 11:00"))
        assert alert.due == at("09-06 11:00")
        return st

    def test_a_report_after_the_silence_began_satisfies_it_from_its_instant(self) -> None:
        st = self.silent_from_11()
        entry.on_lab(POLICY, st, "t2", "reported", at("09-06 12:30"))
        assert not entry.reported_again(st, at("09-06 11:00"), at("09-06 12:30") - 1)
        assert entry.reported_again(st, at("09-06 11:00"), at("09-06 12:30"))

    def test_without_a_report_it_is_never_satisfied(self) -> None:
        st = self.silent_from_11()
        entry.on_lab(POLICY, st, "t2", "received", at("09-06 12:00"))
        assert not entry.reported_again(st, at("09-06 11:00"), at("09-06 15:00"))
        # nor is an alert the lab never raised
        assert not entry.reported_again(st, at("09-06 10:00"), at("09-06 15:00"))

    def test_an_earlier_report_read_later_ends_it_earlier(self) -> None:
        st = self.silent_from_11()
        entry.on_lab(POLICY, st, "t2", "reported", at("09-06 14:00"))
        entry.on_lab(POLICY, st, "t3", "reported", at("09-06 12:00"))  # read after 14:00's
        assert entry.reported_again(st, at("09-06 11:00"), at("09-06 12:00"))

    def test_a_report_already_known_when_the_silence_is_raised_ends_it(self) -> None:
        # the clock reaches 13:00 at once: the 12:00 report was read before the silence
        # (11:00) was raised, and ends it
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 12:00"))
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 13:00"))
        assert entry.reported_again(st, alert.due, at("09-06 12:00"))

    def test_the_end_is_kept_for_the_escalation_and_forgotten_after_retention(self) -> None:
        st = self.silent_from_11()
        entry.on_lab(POLICY, st, "t1", "reported", at("09-06 12:00"))
        entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 16:00"))
        assert st.ended == {at("09-06 11:00"): at("09-06 12:00")}
        entry.fire_silence(POLICY, CAL, st, "lab-1",
                           at("09-06 11:00") + POLICY.state_retention + 1)
        assert st.ended == {}

    def test_the_escalation_rules_ask_it(self) -> None:
        from closedloop.agents.escalation import satisfied
        from closedloop.agents.requirements import Context
        from closedloop.agents.state import EscalationEntry, TubeState

        st = entry.EntryState(lab=self.silent_from_11())
        entry.on_lab(POLICY, st.lab or entry.LabState(), "t2", "reported", at("09-06 12:00"))
        ctx = Context(POLICY, CAL, at("09-06 13:00"))
        silent = EscalationEntry("lab_silent", 2, at("09-06 11:00"), None, None, None, None)
        assert satisfied(ctx, st, silent, at("09-06 13:00"))
        assert not satisfied(ctx, st, silent, at("09-06 11:59"))
        assert not satisfied(ctx, TubeState(), silent, at("09-06 13:00"))
        # a late source needs an operator: nothing satisfies it
        late = EscalationEntry("late_entries", 2, CUTOFF_6, None, None, None, None)
        assert not satisfied(ctx, entry.EntryState(days=entry.SourceState()), late,
                             CUTOFF_7)


class TestTheReportColumns:
    def test_a_district_with_known_lags(self) -> None:
        tally = entry.EntryTally()
        for lag in (10 * MINUTE, 3 * HOUR, 20 * MINUTE):
            tally.add(POLICY, "sampling", lag)
        tally.rejected = 2
        assert tally.columns() == {"entries": 3, "entries_late": 1,
                                   "entry_lag_p90_minutes": 180.0, "entries_rejected": 2}

    def test_without_lags_the_percentile_is_null(self) -> None:
        assert entry.EntryTally(rejected=1).columns() == {
            "entries": 0, "entries_late": 0, "entry_lag_p90_minutes": None,
            "entries_rejected": 1}

    @pytest.mark.parametrize(("value", "district"), [
        ({"district": "xuhui", "pool_size": "x"}, "xuhui"),
        ({"district": " xuhui"}, None), ({"district": "hai\u200bdian"}, None),
        ({"district": ""}, None), ({"district": "d" * 201}, None), ({"district": 7}, None),
        ({"value": {"district": "xuhui"}}, None), (["xuhui"], None), ("xuhui", None),
        # a raw identifier is no valid district, and never names a report
        ({"district": "13912345678"}, None), ({"district": "xuhui 139 1234 5678"}, None),
    ])
    def test_a_rejected_value_counts_where_its_district_would_be_valid(
            self, value: object, district: str | None) -> None:
        assert entry.rejected_district(value) == district
