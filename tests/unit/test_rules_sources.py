"""The data-entry stage's keys (agents/sources.py): a source's days and a lab's silences as
the stage holds them, with their alerts' escalations. Default policy: entry_within sampling
2 h, late_entries_min 10, late_share 0.2, lab_silent_after 3 h, escalation after 2 h,
cut-off 22:00 Asia/Shanghai."""

from __future__ import annotations

import msgspec
from helpers import local as at

from closedloop.agents.calendar import Calendar
from closedloop.agents.entry import EntryState
from closedloop.agents.requirements import Context, fire_due, next_due
from closedloop.agents.sources import (
    HANDLERS,
    Entered,
    on_entered,
    on_lab_told,
    rejected_part,
    routes,
)
from closedloop.agents.state import Contribution, LabTold
from closedloop.schemas.events import MODELS, Event
from closedloop.schemas.policy import default_policy

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
HOUR, MINUTE = 3600, 60


CUTOFF_6 = at("09-06 22:00")


def fire(st: EntryState, key: str, clock: int) -> Context:
    ctx = Context(POLICY, CAL, clock)
    fire_due(ctx, st, key, HANDLERS)
    return ctx


def site_day(late: int, on_time: int, clock: int = at("09-06 08:00")) -> EntryState:
    st = EntryState()
    for n in range(late + on_time):
        occurred = at("09-06 08:00") + n * MINUTE
        lag = 2 * HOUR + 1 if n < late else 2 * HOUR  # exactly entry_within is on time
        on_entered(Context(POLICY, CAL, clock), st, "sampling:site-17",
                   Entered("sampling", occurred + lag, occurred, "xuhui"))
    return st


class TestASourcesDay:
    def test_exactly_the_minimum_at_exactly_the_share_raises_at_the_cut_off(self) -> None:
        st = site_day(late=2, on_time=8)
        assert st.req == {"day": CUTOFF_6} and next_due(st) == CUTOFF_6
        assert fire(st, "sampling:site-17", CUTOFF_6 - 1).out.alerts == []
        (alert,) = fire(st, "sampling:site-17", CUTOFF_6).out.alerts
        assert (alert.kind, alert.subject, alert.district, alert.due_at) == (
            "late_entries", "sampling:site-17", "xuhui", "2022-09-06T22:00:00+08:00")
        assert alert.details["entries"] == 10 and alert.details["late"] == 2
        assert st.days is None  # the day is judged and forgotten
        # the alert needs an operator: its escalation is open on this key
        assert st.esc is not None and list(st.esc) == [alert.alert_id]

    def test_one_late_record_short_raises_nothing(self) -> None:
        st = site_day(late=1, on_time=9)  # 1/10 < 0.2
        assert fire(st, "sampling:site-17", CUTOFF_6).out.alerts == []
        st = site_day(late=9, on_time=0)  # 9 < late_entries_min
        assert fire(st, "sampling:site-17", CUTOFF_6).out.alerts == []

    def test_records_read_after_the_cut_off_count_in_the_next_day(self) -> None:
        # the clock is past 09-06's cut-off when the records of 09-06 are read
        st = site_day(late=10, on_time=0, clock=CUTOFF_6 + 1)
        assert fire(st, "sampling:site-17", CUTOFF_6 + 1).out.alerts == []
        (alert,) = fire(st, "sampling:site-17", at("09-07 22:00")).out.alerts
        assert alert.due_at == "2022-09-07T22:00:00+08:00"

    def test_the_escalation_goes_up_unless_an_operator_acts(self) -> None:
        st = site_day(late=10, on_time=0)
        fire(st, "sampling:site-17", CUTOFF_6)
        ctx = fire(st, "sampling:site-17", CUTOFF_6 + 2 * HOUR)
        assert [e.details["level"] for e in ctx.out.escalations] == [2]


class TestALabsSilence:
    # what the tube stage tells the lab (agents/lab_waits.py): a tube received at 08:00
    # begins to wait at 11:00; a report is an instant
    def waits(self, st: EntryState, when: str) -> None:
        on_lab_told(Context(POLICY, CAL, 0), st, "lab-1", LabTold([at(when)], [], []))

    def reported(self, st: EntryState, instant: int) -> None:
        on_lab_told(Context(POLICY, CAL, 0), st, "lab-1", LabTold([], [], [instant]))

    def test_raised_at_its_first_instant_and_ended_by_the_next_report(self) -> None:
        st = EntryState()
        self.waits(st, "09-06 11:00")
        assert st.req == {"silent": at("09-06 11:00")}
        assert fire(st, "lab-1", at("09-06 11:00") - 1).out.alerts == []
        (alert,) = fire(st, "lab-1", at("09-06 11:00")).out.alerts
        assert (alert.kind, alert.subject, alert.district) == ("lab_silent", "lab-1", None)
        # the lab reports again at 12:30: the escalation at 13:00 is satisfied
        self.reported(st, at("09-06 12:30"))
        assert fire(st, "lab-1", at("09-06 13:00")).out.escalations == []
        assert st.esc is None

    def test_without_a_report_the_silence_escalates(self) -> None:
        st = EntryState()
        self.waits(st, "09-06 11:00")
        fire(st, "lab-1", at("09-06 11:00"))
        ctx = fire(st, "lab-1", at("09-06 13:00"))
        assert [(e.details["alert_kind"], e.details["level"]) for e in ctx.out.escalations] == [
            ("lab_silent", 2)]

    def test_a_report_one_second_before_the_silence_prevents_it(self) -> None:
        st = EntryState()
        self.waits(st, "09-06 11:00")
        self.reported(st, at("09-06 11:00") - 1)
        # t1 still waits; the silence would begin at 11:00, but the lab reported at
        # 10:59:59: the next possible one is three hours after that report
        assert st.req == {"silent": at("09-06 14:00") - 1}
        assert fire(st, "lab-1", at("09-06 14:00") - 2).out.alerts == []
        (alert,) = fire(st, "lab-1", at("09-06 14:00") - 1).out.alerts
        assert alert.details["last_reported_at"] == "2022-09-06T10:59:59+08:00"


class TestWhereARecordGoes:
    def event(self, topic: str, **fields: object) -> Event:
        base = {"event_id": "e-1", "occurred_at": "2022-09-06T09:00:00+08:00"}
        return msgspec.convert(base | fields, MODELS[topic])

    def test_a_sampling_of_known_lag_goes_to_its_sites_day_and_its_districts_report(
            self) -> None:
        sampling = self.event("sampling", person_id="pz:00000001", tube_id="tb-1",
                              site_id="site-17", district="xuhui", pool_size=1)
        occurred = at("09-06 09:00")
        sent, part = routes(POLICY, "sampling", sampling, occurred, occurred + 2 * HOUR + 1)
        assert sent == [("sampling:site-17",
                         Entered("sampling", occurred + 2 * HOUR + 1, occurred, "xuhui"))]
        assert part == Contribution("xuhui", occurred, "entry_late", 2 * HOUR + 1)

    def test_of_unknown_lag_it_goes_nowhere(self) -> None:
        sampling = self.event("sampling", person_id="pz:00000001", tube_id="tb-1",
                              site_id="site-17", district="xuhui", pool_size=1)
        assert routes(POLICY, "sampling", sampling, at("09-06 09:00"), None) == ([], None)

    def test_a_lab_record_goes_only_to_its_labs_day_its_silence_is_the_tubes_to_tell(
            self) -> None:
        lab = self.event("lab", tube_id="tb-1", lab_id="lab-2", status="received")
        occurred = at("09-06 09:00")
        assert routes(POLICY, "lab", lab, occurred, None) == ([], None)
        sent, part = routes(POLICY, "lab", lab, occurred, occurred + 60)
        assert [key for key, _ in sent] == ["lab:lab-2"] and part is None

    def test_a_record_without_source_counts_only_in_its_districts_report(self) -> None:
        push = self.event("travel", person_id="pz:00000001", district="xuhui",
                          arrived_at="2022-09-06T08:00:00+08:00", origin="x", risk="high")
        occurred = at("09-06 09:00")
        assert routes(POLICY, "travel", push, occurred, occurred + 60) == (
            [], Contribution("xuhui", occurred, "entry", 60))
        visit = self.event("followup", person_id="pz:00000001", kind="visit")
        assert routes(POLICY, "followup", visit, occurred, occurred + 60) == ([], None)

    def test_a_rejected_value_counts_at_its_own_plausible_occurred_at(self) -> None:
        bound = at("09-07 00:00")
        value = {"district": "xuhui", "pool_size": 0, "occurred_at": "2022-09-06T12:00:00+08:00"}
        assert rejected_part(POLICY, "sampling", value, bound) == ("xuhui", at("09-06 12:00"))
        # without an offset: read in the policy's zone, as the city's clerks write it
        naive = {**value, "occurred_at": "2022-09-06T12:00:00"}
        assert rejected_part(POLICY, "sampling", naive, bound) == ("xuhui", at("09-06 12:00"))
        # exactly max_clock_skew after the bound is plausible, a second more is not
        skewed = {**value, "occurred_at": "2022-09-07T00:15:00+08:00"}
        assert rejected_part(POLICY, "sampling", skewed, bound) == ("xuhui", bound + 900)
        later = {**value, "occurred_at": "2022-09-07T00:15:01+08:00"}
        assert rejected_part(POLICY, "sampling", later, bound) == ("xuhui", None)
        for spoiled in ("1999-12-31T23:59:59Z", "yesterday", 1662436800, None):
            assert rejected_part(POLICY, "sampling", {**value, "occurred_at": spoiled}, bound) == (
                "xuhui", None)
        assert rejected_part(POLICY, "sampling", {"district": "xuhui"}, None) == ("xuhui", None)
        # without an occurred_at, another time the topic's record names
        push = {"district": "xuhui", "arrived_at": "2022-09-06T08:00:00+08:00"}
        assert rejected_part(POLICY, "travel", push, None) == ("xuhui", at("09-06 08:00"))
        assert rejected_part(POLICY, None, push, None) == ("xuhui", None)

    def test_a_rejected_value_naming_no_valid_district_counts_nowhere(self) -> None:
        assert rejected_part(POLICY, "sampling", {"district": "13912345678"}, None) is None
        assert rejected_part(POLICY, "sampling", None, None) is None
