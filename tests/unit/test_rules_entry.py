"""Data entry (CONTRACT.md v1.2 §4): late sources and silent labs, as pure rules at their edges.

Default policy: entry_within sampling 2 h, lab 2 h, followup 4 h; late_entries_min 10;
late_share 0.2; lab_silent_after 3 h; daily cut-off 22:00 Asia/Shanghai.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from datetime import datetime
from fractions import Fraction
from typing import Any

import msgspec
import pytest

from closedloop.agents import entry, lab_waits
from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, close_req, due_of, open_req
from closedloop.agents.state import TubeState
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


FAR = at("12-31 00:00")  # a tube clock past every wait: each is told as its records come


class Tubes:
    """One lab's tubes as the tube stage holds them (agents/lab_waits.py), telling the lab's
    state (``st``) what the engine would: the parts of each record, and of each wait the
    tube clock reaches (its ``wait`` deadlines fired in order, before what is read at it)."""

    def __init__(self) -> None:
        self.st = entry.LabState()
        self.tubes: dict[str, TubeState] = {}
        self.due: list[tuple[int, str]] = []  # (wait deadline, tube), a heap
        self.reported: set[str] = set()

    def _tell(self, ctx: Context, clock: int | None) -> int | None:
        following = entry.silence_start(POLICY, self.st)
        for lab_id, told in ctx.out.labs:
            assert lab_id == "lab-1"
            following = entry.on_told(POLICY, self.st, told.starts, told.stops, told.reports,
                                      clock)
        return following

    def _armed(self, tube: str, st: TubeState) -> None:
        due = due_of(st, "wait")
        if due is not None:
            heapq.heappush(self.due, (due, tube))

    def advance(self, clock: int) -> None:
        """The tube clock reaches ``clock``: fire the waits due by then, in order."""
        while self.due and self.due[0][0] <= clock:
            due, tube = heapq.heappop(self.due)
            st = self.tubes[tube]
            if due_of(st, "wait") != due:
                continue  # moved since
            ctx = Context(POLICY, CAL, clock)
            following = lab_waits.lapse_wait(ctx, st, tube, "wait", due)
            if following is None:
                close_req(st, "wait")
            else:
                open_req(st, "wait", following)
                self._armed(tube, st)
            self._tell(ctx, clock)

    def record(self, tube: str, status: str, when: int, clock: int | None = None,
               lab_clock: bool = True) -> int | None:
        """A lab record read at ``clock`` (None: a tube clock past every wait, and no lab
        clock); returns the lab's next deadline. ``lab_clock`` False: the lab is told
        without its clock (it forgets nothing)."""
        if clock is not None:
            self.advance(clock)
        ctx = Context(POLICY, CAL, FAR if clock is None else clock)
        st = self.tubes.setdefault(tube, TubeState())
        # as the tube stage decides it (agents/tubes.py): reported by this lab, no wait kept
        settled = st.wait is None and tube in self.reported
        lab_waits.on_lab_record(ctx, st, "lab-1", status, when, settled)
        if status == "reported":
            self.reported.add(tube)
        self._armed(tube, st)
        return self._tell(ctx, clock if lab_clock else None)


def lab_state(*records: tuple[str, str, str]) -> Tubes:
    """A lab after ``(tube, status, local instant)`` records, in the order given."""
    lab = Tubes()
    for tube, status, when in records:
        lab.record(tube, status, at(when))
    return lab


def iso(when: str) -> str:
    return CAL.iso(at(when))


class TestLabSilent:
    def test_a_tube_waiting_three_hours_with_no_report_is_a_silence(self) -> None:
        # given a tube received at 08:00 and nothing else
        st = lab_state(("t1", "received", "09-06 08:00")).st
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
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00")).st
        assert entry.silence_start(POLICY, st) == at("09-06 12:00")
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        assert alert.details == {"pending_tubes": 1, "last_reported_at": iso("09-06 09:00")}

    def test_a_silence_ended_one_second_before_it_would_be_raised_raises_nothing(self) -> None:
        # given the silence due at 12:00, and a report at 11:59:59
        lab = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00"))
        lab.record("t3", "reported", at("09-06 11:59") + 59)
        # when the clock reaches 12:00
        raised, due = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 12:00"))
        # then nothing, and the next possible silence is three hours after that report
        assert raised == [] and due == at("09-06 14:59") + 59

    def test_a_report_at_the_instant_itself_ends_it(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 09:00"),
                       ("t3", "reported", "09-06 12:00")).st
        assert entry.silence_start(POLICY, st) == at("09-06 15:00")

    def test_the_next_report_ends_it_and_a_later_silence_raises_a_new_alert(self) -> None:
        lab = lab_state(("t1", "received", "09-06 08:00"))
        first, _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 12:00"))
        # the lab reports another tube at 13:00 (t1 still waits), then nothing more
        lab.record("t2", "reported", at("09-06 13:00"))
        second, _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 16:00"))
        assert [a.due for a in first] == [at("09-06 11:00")]
        assert [a.due for a in second] == [at("09-06 16:00")]
        assert second[0].details["last_reported_at"] == iso("09-06 13:00")
        # and once t1 is reported there is nothing left to wait for
        lab.record("t1", "reported", at("09-06 17:00"))
        assert entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 23:00")) == ([], None)

    def test_only_tubes_received_three_hours_before_count_as_pending(self) -> None:
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "received", "09-06 10:00"),
                       ("t3", "received", "09-06 08:30"), ("t3", "reported", "09-06 09:00")).st
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 12:00"))
        # t3 reported at 09:00: the silence begins at 12:00; t2 (10:00) waits only two hours
        assert alert.due == at("09-06 12:00")
        assert alert.details["pending_tubes"] == 1

    def test_a_result_before_its_receipt_is_no_waiting_tube(self) -> None:
        # the report arrives first, the received record after it
        st = lab_state(("t1", "reported", "09-06 10:00"), ("t1", "received", "09-06 08:00")).st
        assert entry.silence_start(POLICY, st) is None

    def test_an_earlier_receipt_read_later_moves_the_wait_earlier(self) -> None:
        st = lab_state(("t1", "received", "09-06 09:00"), ("t1", "received", "09-06 08:00")).st
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 13:00"))
        assert (alert.due, alert.details["pending_tubes"]) == (at("09-06 11:00"), 1)

    def test_a_settled_wait_is_forgotten_its_later_reports_still_told(self) -> None:
        # t1 received 08:00, reported 12:00: it waited 11:00-12:00, and nothing is left
        lab = lab_state(("t1", "received", "09-06 08:00"), ("t1", "reported", "09-06 12:00"))
        assert lab.tubes["t1"].wait is None
        (first,), _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 12:00"))
        assert first.due == at("09-06 11:00")
        # a second report of it, later, is a report of the lab: it ends the 15:00 silence
        # another tube would begin
        lab.record("t2", "received", at("09-06 10:00"))
        lab.record("t1", "reported", at("09-06 14:00"))
        assert entry.silence_start(POLICY, lab.st) == at("09-06 17:00")
        # an earlier receipt read after both records changes nothing: the wait is settled
        lab.record("t1", "received", at("09-06 07:00"))
        (alert,), _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 17:00"))
        assert (alert.due, alert.details["pending_tubes"]) == (at("09-06 17:00"), 1)

    def test_arrival_order_within_the_lateness_changes_nothing(self) -> None:
        records = [("t1", "received", "09-06 08:00"), ("t2", "received", "09-06 08:02"),
                   ("t2", "reported", "09-06 09:00"), ("t3", "reported", "09-06 09:03")]
        forward = lab_state(*records).st
        backward = lab_state(*reversed(records)).st
        clock = at("09-07 00:00")
        assert entry.fire_silence(POLICY, CAL, forward, "l", clock) == entry.fire_silence(
            POLICY, CAL, backward, "l", clock)

    def test_the_state_keeps_only_what_a_later_silence_needs(self) -> None:
        lab = Tubes()
        for n in range(200):  # a lab reporting every tube within the hour, all day
            lab.record(f"t{n}", "received", at("09-06 06:00") + n * 60)
            lab.record(f"t{n}", "reported", at("09-06 06:30") + n * 60)
        raised, _ = entry.fire_silence(POLICY, CAL, lab.st, "l", at("09-06 12:00"))
        assert raised == []
        # the latest report before the clock, and no tube waiting
        assert lab.st.reports == [at("09-06 06:30") + 199 * 60]
        assert (lab.st.waiting, lab.st.changes) == (0, {})

    def test_read_with_its_clock_a_busy_lab_keeps_only_what_lies_ahead(self) -> None:
        # a lab that is never silent reaches no deadline, so no firing forgets for it: the
        # clock it is read at does
        lab = Tubes()
        start = at("09-06 06:00")
        for n in range(2000):  # a tube a minute, each reported 30 min after it arrived
            clock = start + n * 60 - POLICY.allowed_lateness
            lab.record(f"t{n}", "received", start + n * 60, clock)
            if n >= 30:
                due = lab.record(f"t{n - 30}", "reported", start + n * 60, clock)
                assert due is None or due > clock
        # no tube ever waits; the reports within the allowed lateness of the clock
        assert lab.st.changes == {} and lab.st.waiting == 0
        assert len(lab.st.reports) <= POLICY.allowed_lateness // 60 + 2

    def test_a_labs_state_stays_bounded_while_its_tubes_in_flight_grow(self) -> None:
        # 50,000 tubes received, one every 6 s, none reported: the lab's count grows, never
        # its state (the 1,000,000-person round city's lab-1 has ~100,000 in flight)
        lab = Tubes()
        start = at("09-06 06:00")
        sizes = []
        for n in range(50_000):
            clock = start + n * 6 - POLICY.allowed_lateness
            due = lab.record(f"t{n}", "received", start + n * 6, clock)
            if due is not None and due <= clock:
                entry.fire_silence(POLICY, CAL, lab.st, "lab-1", clock)
            if n % 5000 == 4999:
                sizes.append(len(msgspec.json.encode(lab.st)))
        assert max(sizes) < 2048, sizes
        clock = start + 50_000 * 6
        lab.advance(clock)
        raised, _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", clock)
        waited = (clock - POLICY.lab_silent_after - start) // 6 + 1
        assert entry.silence_start(POLICY, lab.st) is None
        assert lab.st.waiting == waited and len(msgspec.json.encode(lab.st)) < 2048
        assert raised == []  # raised once, at 09:00, when the first tube began to wait

    def test_a_tube_reported_before_the_clock_and_received_later_is_not_waiting(self) -> None:
        lab = Tubes()
        lab.record("t1", "reported", at("09-06 10:00"), at("09-06 09:55"))
        lab.record("t2", "received", at("09-06 13:00"), at("09-06 13:55"))
        lab.record("t1", "received", at("09-06 12:30"), at("09-06 13:55"))
        lab.advance(at("09-06 16:00"))
        raised, _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 16:00"))
        assert [(a.due, a.details["pending_tubes"]) for a in raised] == [(at("09-06 16:00"), 1)]

    def test_a_tube_lost_by_its_lab_stops_waiting_after_the_retention(self) -> None:
        lab = Tubes()
        lab.record("t1", "received", at("09-06 08:00"), at("09-06 08:00"))
        lab.advance(at("09-06 08:00") + POLICY.state_retention)
        assert lab.st.waiting + sum(lab.st.changes.values()) == 0
        assert lab.tubes["t1"].req is None  # nothing left to tell: the tube can be forgotten

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
        silences = self._silences(arrival, lab_clock=True)
        assert silences == self._silences(arrival, lab_clock=False)
        assert silences  # the stalls are silences

    @pytest.mark.parametrize("seed", range(8))
    def test_the_next_silence_is_the_contracts_whatever_the_arrival_order(self, seed: int
                                                                          ) -> None:
        # records in any order at all: after each, the next silence is the first instant
        # at which the contract's definition, applied to every record read, says one begins
        rng = random.Random(seed)
        records = []
        for n in range(60):
            received = at("09-06 06:00") + rng.randrange(0, 24 * 3600)
            records.append((f"t{n}", "received", received))
            if rng.random() < 0.8:
                records.append((f"t{n}", "reported", received + rng.randrange(0, 5 * 3600)))
        rng.shuffle(records)
        lab = Tubes()
        for n, (tube, status, when) in enumerate(records):
            found = lab.record(tube, status, when)
            assert found == _first_silence(records[: n + 1])

    @staticmethod
    def _silences(records: list[tuple[int, str, str]], lab_clock: bool
                  ) -> list[tuple[int, dict[str, Any]]]:
        lab, raised, due, latest = Tubes(), [], None, 0
        for when, tube, status in records:
            latest = max(latest, when)
            clock = latest - POLICY.allowed_lateness
            due = lab.record(tube, status, when, clock, lab_clock)
            while due is not None and due <= clock:
                fired, due = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", clock)
                raised.extend(fired)
        lab.advance(latest + 86400)
        raised.extend(entry.fire_silence(POLICY, CAL, lab.st, "lab-1", latest + 86400)[0])
        return [(alert.due, alert.details) for alert in raised]


def _first_silence(records: list[tuple[str, str, int]]) -> int | None:
    """The contract's definition, read directly: silent at t when a tube received at or
    before t - 3 h has no report at t (nor is older than the retention), and no report lies
    in (t - 3 h, t]; the first t at which a silence begins."""
    quiet, kept = POLICY.lab_silent_after, POLICY.state_retention
    got: dict[str, int] = {}
    rep: dict[str, int] = {}
    for tube, status, when in records:
        times = got if status == "received" else rep
        times[tube] = min(times.get(tube, when), when)
    reports = sorted(rep.values())

    def silent(t: int) -> bool:
        waits = any(g + quiet <= t and t < min(rep.get(tube, g + kept), g + kept)
                    for tube, g in got.items())
        return waits and not any(t - quiet < r <= t for r in reports)

    points = sorted({g + quiet for g in got.values()} | {g + kept for g in got.values()}
                    | set(reports) | {r + quiet for r in reports})
    return next((t for t in points if silent(t) and not silent(t - 1)), None)


class TestASilentLabsEscalation:
    """lab_silent needs an operator unless the lab reports again, which ends the silence."""

    def silent_from_11(self) -> Tubes:
        lab = lab_state(("t1", "received", "09-06 08:00"))
        (alert,), _ = entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 11:00"))
        assert alert.due == at("09-06 11:00")
        return lab

    def test_a_report_after_the_silence_began_satisfies_it_from_its_instant(self) -> None:
        lab = self.silent_from_11()
        lab.record("t2", "reported", at("09-06 12:30"))
        assert not entry.reported_again(lab.st, at("09-06 11:00"), at("09-06 12:30") - 1)
        assert entry.reported_again(lab.st, at("09-06 11:00"), at("09-06 12:30"))

    def test_without_a_report_it_is_never_satisfied(self) -> None:
        lab = self.silent_from_11()
        lab.record("t2", "received", at("09-06 12:00"))
        assert not entry.reported_again(lab.st, at("09-06 11:00"), at("09-06 15:00"))
        # nor is an alert the lab never raised
        assert not entry.reported_again(lab.st, at("09-06 10:00"), at("09-06 15:00"))

    def test_an_earlier_report_read_later_ends_it_earlier(self) -> None:
        lab = self.silent_from_11()
        lab.record("t2", "reported", at("09-06 14:00"))
        lab.record("t3", "reported", at("09-06 12:00"))  # read after 14:00's
        assert entry.reported_again(lab.st, at("09-06 11:00"), at("09-06 12:00"))

    def test_a_report_already_known_when_the_silence_is_raised_ends_it(self) -> None:
        # the clock reaches 13:00 at once: the 12:00 report was read before the silence
        # (11:00) was raised, and ends it
        st = lab_state(("t1", "received", "09-06 08:00"), ("t2", "reported", "09-06 12:00")).st
        (alert,), _ = entry.fire_silence(POLICY, CAL, st, "lab-1", at("09-06 13:00"))
        assert entry.reported_again(st, alert.due, at("09-06 12:00"))

    def test_the_end_is_kept_for_the_escalation_and_forgotten_after_retention(self) -> None:
        lab = self.silent_from_11()
        lab.record("t1", "reported", at("09-06 12:00"))
        entry.fire_silence(POLICY, CAL, lab.st, "lab-1", at("09-06 16:00"))
        assert lab.st.ended == {at("09-06 11:00"): at("09-06 12:00")}
        entry.fire_silence(POLICY, CAL, lab.st, "lab-1",
                           at("09-06 11:00") + POLICY.state_retention + 1)
        assert lab.st.ended == {}

    def test_the_escalation_rules_ask_it(self) -> None:
        from closedloop.agents.escalation import satisfied
        from closedloop.agents.state import EscalationEntry

        lab = self.silent_from_11()
        st = entry.EntryState(lab=lab.st)
        lab.record("t2", "reported", at("09-06 12:00"))
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
