"""Escalation: an alert nobody acknowledged, resolved or satisfied goes up a level.

Default policy: ``escalation.after`` = 2 h. An alert raised at R escalates to level 2 at
R + 2 h and to level 3 at R + 4 h, then stops. Deadlines fire when the clock reaches them
(``--until`` exactly at the due instant fires it), and facts count when their event time is
at or before the due instant, as in every other loop.
"""

from __future__ import annotations

from typing import Any

from helpers import (
    T0,
    action,
    alerts_of,
    at,
    epoch,
    followup,
    lab,
    policy,
    run_escalations,
    sampling,
    travel,
)

from closedloop.agents.calendar import Calendar
from closedloop.agents.person import person_status
from closedloop.agents.requirements import Context, raise_alert
from closedloop.agents.state import PersonState
from closedloop.schemas.ids import alert_id
from closedloop.schemas.instants import parse_instant
from closedloop.schemas.outputs import ALERT_KINDS
from closedloop.schemas.policy import default_policy
from closedloop.streams.engine.embedded import EmbeddedDriver, Origin

PERSON = "traveller-01"
TUBE = "tube-0001"
UNLOCATED = alert_id("unlocated", PERSON, epoch(at(T0, hours=2)))  # raised at 11:00
SLA = alert_id("lab_sla_breached", TUBE, epoch(at(T0, hours=4)))  # transport, raised 13:00


def _levels(escalations: list[dict[str, Any]], of: str) -> list[tuple[str, int]]:
    """(due_at, level) of each escalation of alert ``of``, in output order.

    A push without follow-up also misses its day-1 test (alerts at midnight): those
    escalate too, so each test looks at one alert's escalations.
    """
    return [(e["due_at"], e["details"]["level"]) for e in escalations
            if e["details"]["alert_id"] == of]


class TestPersonAlert:
    """An ``unlocated`` alert raised at 11:00 (push at 09:00, nobody located)."""

    def test_exactly_at_raised_plus_2h_escalates_to_level_2(self) -> None:
        # given a push and no follow-up at all
        events = [travel(PERSON, T0)]
        # when the clock stops one second before 13:00, then at 13:00 exactly
        _, before, _ = run_escalations(events, until=at(T0, hours=4, seconds=-1))
        alerts, on_time, _ = run_escalations(events, until=at(T0, hours=4))
        # then level 2 exists only once the clock has reached raised + 2 h
        assert before == []
        [escalation] = on_time
        assert escalation["kind"] == "escalated"
        assert escalation["details"] == {"alert_id": UNLOCATED, "alert_kind": "unlocated",
                                         "level": 2}
        assert escalation["subject"] == PERSON and escalation["person_id"] == PERSON
        assert escalation["district"] == "district-a" and escalation["tube_id"] is None
        assert escalation["due_at"] == escalation["raised_at"] == at(T0, hours=4)
        assert escalation["alert_id"] == alert_id("escalated", f"{PERSON}\x1f{UNLOCATED}",
                                                  epoch(at(T0, hours=4)))
        # and the alerts output keeps to the contract's nine kinds
        assert [a["alert_id"] for a in alerts] == [UNLOCATED]

    def test_level_3_one_more_window_later_then_it_stops(self) -> None:
        # given an alert nobody handles
        events = [travel(PERSON, T0)]
        # when the clock runs for a day
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then level 2 at 13:00, level 3 (city command) at 15:00, and nothing more
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2), (at(T0, hours=6), 3)]

    def test_ack_one_second_before_prevents_it(self) -> None:
        # given an ack at 12:59:59
        events = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=4, seconds=-1))]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then no escalation, and the action was applied, not ignored
        assert _levels(escalations, UNLOCATED) == []
        assert stats["actions_applied:ack"] == 1
        assert not [k for k in stats if k.startswith("actions_ignored")]

    def test_ack_after_level_2_stops_level_3(self) -> None:
        # given an ack at 13:00:01, just after level 2 fell due
        events = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=4, seconds=1))]
        # when the clock runs for a day
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then level 2 only
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2)]

    def test_an_assignment_hands_it_on_and_stops_nothing(self) -> None:
        # given the alert assigned to another operator at 12:00, and again before it is
        # raised (11:01, read while the clock lags), and acked by nobody
        events = [travel(PERSON, T0),
                  action(UNLOCATED, PERSON, at(T0, hours=2, minutes=1), "assign",
                         assignee="operator-2"),
                  action(UNLOCATED, PERSON, at(T0, hours=3), "assign", assignee="operator-3")]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then it escalates to both levels as if nothing had happened (contract v1.2 §3)
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2), (at(T0, hours=6), 3)]
        # and the assignment of the open escalation was applied; the one read before the
        # alert was raised found no alert on its subject (an assignment is not kept for it)
        assert stats["actions_applied:assign"] == 1
        assert stats["actions_ignored:not_subjects_alert"] == 1

    def test_an_assignment_then_an_ack_stops_it_at_the_ack(self) -> None:
        events = [travel(PERSON, T0),
                  action(UNLOCATED, PERSON, at(T0, hours=3), "assign", assignee="operator-2"),
                  action(UNLOCATED, PERSON, at(T0, hours=5), "ack", operator_id="operator-2")]
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2)]

    def test_resolve_without_ack_closes_it(self) -> None:
        # given a resolve (no ack before it) at 14:00, between level 2 and level 3
        events = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=5), "resolve")]
        # when the clock runs for a day
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then level 2 only
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2)]

    def test_satisfied_before_the_due_instant_prevents_it(self) -> None:
        # given the person located at 12:00, after the alert but before it escalates
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=3), "located")]
        # when the clock runs for a day
        alerts, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then the alert stands, but nothing escalates
        assert [a["alert_id"] for a in alerts_of(alerts, "unlocated")] == [UNLOCATED]
        assert _levels(escalations, UNLOCATED) == []

    def test_a_new_push_after_the_due_instant_does_not_undo_it_however_late_it_fires(
        self,
    ) -> None:
        # given the person located at 12:00 (satisfied before 13:00), then pushed again at
        # 13:01 for a new journey arriving 13:01
        again = travel(PERSON, at(T0, hours=4, minutes=1))
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=3), "located"), again]
        # when the escalation fires after the new push was applied, or before it (another
        # person's push at 13:06 moved the clock first)
        other = travel("traveller-99", at(T0, hours=4, minutes=6))
        _, late, _ = run_escalations(events, until=at(T0, hours=7))
        _, early, _ = run_escalations([*events[:2], other, again], until=at(T0, hours=7))
        # then in both the 11:00 alert was satisfied by 13:00: nothing escalates
        assert _levels(late, UNLOCATED) == _levels(early, UNLOCATED) == []

    def test_satisfied_after_level_2_stops_level_3(self) -> None:
        # given the person located at 14:00
        events = [travel(PERSON, T0), followup(PERSON, at(T0, hours=5), "located")]
        # when the clock runs for a day
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then level 2 only
        assert _levels(escalations, UNLOCATED) == [(at(T0, hours=4), 2)]

    def test_an_action_for_an_unknown_alert_is_ignored_and_counted(self) -> None:
        # given an ack naming an alert nobody raised
        events = [travel(PERSON, T0), action("al-unknown", PERSON, at(T0, hours=3))]
        # when the clock runs for a day
        outputs = run_escalations(events, until=at(T0, days=1))
        _, escalations, stats = outputs
        # then it is counted as ignored and the real alert still escalates twice
        assert stats["actions_ignored:not_subjects_alert"] == 1
        assert stats["applied:action"] == 1
        assert [level for _, level in _levels(escalations, UNLOCATED)] == [2, 3]


    def test_an_action_naming_another_subject_is_ignored_with_its_reason(self) -> None:
        # given a resolve of the traveller's alert, sent with another (known) person as subject
        other = "traveller-02"
        events = [travel(PERSON, T0), travel(other, T0),
                  action(UNLOCATED, other, at(T0, hours=3), "resolve")]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then the engine ignores it, says why, and the alert escalates to levels 2 and 3
        assert stats["actions_ignored:not_subjects_alert"] == 1
        assert not [k for k in stats if k.startswith("actions_applied")]
        assert [level for _, level in _levels(escalations, UNLOCATED)] == [2, 3]

    def test_an_action_after_the_escalation_ended_is_ignored_as_over(self) -> None:
        # given an ack at 16:00, read after another record moved the clock past level 3
        # (15:00), which ended the escalation
        events = [travel(PERSON, T0), travel("traveller-02", at(T0, hours=6, minutes=30)),
                  action(UNLOCATED, PERSON, at(T0, hours=7))]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then both levels stand and the action is counted as too late
        assert [level for _, level in _levels(escalations, UNLOCATED)] == [2, 3]
        assert stats["actions_ignored:escalation_over"] == 1

    def test_an_action_read_before_its_alert_is_raised_is_applied_when_it_is(self) -> None:
        # given a resolve at 11:03, read while the clock (11:03 - 5 min) has not yet raised
        # the 11:00 alert
        events = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=2, minutes=3),
                                             "resolve")]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then the alert took it over: no escalation, and it is counted as applied
        assert _levels(escalations, UNLOCATED) == []
        assert stats["actions_applied:resolve"] == 1
        assert not [k for k in stats if k.startswith("actions_ignored")]


class TestTubeAlert:
    """A tube collected at 09:00 never received: ``lab_sla_breached`` (transport) at 13:00."""

    def test_it_escalates_on_the_tube(self) -> None:
        # given the tube received and reported only the next morning
        events = [sampling(PERSON, TUBE, T0), lab(TUBE, at(T0, hours=20), "negative")]
        # when the clock runs for a day
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then level 2 at 15:00 and level 3 at 17:00 (the tube arrives only at 05:00)
        assert _levels(escalations, SLA) == [(at(T0, hours=6), 2), (at(T0, hours=8), 3)]
        first = next(e for e in escalations if e["details"]["alert_id"] == SLA)
        assert first["subject"] == first["tube_id"] == TUBE
        assert first["person_id"] is None

    def test_acked_through_the_tube_stage(self) -> None:
        # given an ack keyed by the tube (the alert's subject) at 14:00
        events = [sampling(PERSON, TUBE, T0), action(SLA, TUBE, at(T0, hours=5))]
        # when the clock runs for a day
        _, escalations, stats = run_escalations(events, until=at(T0, days=1))
        # then the tube stage applied it: no escalation of the transport breach
        assert _levels(escalations, SLA) == []
        assert stats["actions_applied:ack"] == 1
        assert not [k for k in stats if k.startswith("actions_ignored")]

    def test_a_single_tube_positive_escalates_on_its_person_and_is_acked_there(self) -> None:
        # given a single tube reported positive at 12:00
        reported = at(T0, hours=3)
        positive = alert_id("positive", PERSON, epoch(reported))
        events = [sampling(PERSON, TUBE, T0), lab(TUBE, at(T0, hours=1)),
                  lab(TUBE, reported, "positive")]
        # when nobody acts, or an operator acks it (keyed by the person) at 13:00
        _, unhandled, _ = run_escalations(events, until=at(T0, days=1))
        _, acked, _ = run_escalations(
            [*events, action(positive, PERSON, at(T0, hours=4))], until=at(T0, days=1)
        )
        # then it escalates at 14:00 and 16:00 unless acked
        assert _levels(unhandled, positive) == [(at(T0, hours=5), 2), (at(T0, hours=7), 3)]
        first = next(e for e in unhandled if e["details"]["alert_id"] == positive)
        assert first["subject"] == PERSON and first["tube_id"] == TUBE
        assert _levels(acked, positive) == []


class TestNoOtherOutputChanges:
    def test_an_action_before_its_alert_is_raised_still_counts(self) -> None:
        # given an ack at 11:02 of the 11:00 alert, read while the clock (10:57) lags behind
        events = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=2, minutes=2))]
        # when the clock runs on
        _, escalations, _ = run_escalations(events, until=at(T0, days=1))
        # then it is judged by event time: acknowledged before level 2, nothing escalates
        assert _levels(escalations, UNLOCATED) == []

    def test_escalation_state_ends_and_stays_out_of_person_status(self) -> None:
        # given a person whose unlocated alert is escalating
        driver = EmbeddedDriver(policy())
        driver.pipe_line(_line(travel(PERSON, T0)), Origin(line=1))
        driver.advance_to(parse_instant(at(T0, hours=3)))
        state = driver.persons[PERSON]
        ctx = Context(driver.policy, driver.cal, driver.clock.value)
        # then its status lists no escalation as an open requirement
        assert f"esc:{UNLOCATED}" in (state.req or {})
        assert not any(name.startswith("esc:")
                       for name in person_status(ctx, PERSON, state).open_requirements)
        # and once level 3 has fired, nothing of the escalation is left
        driver.advance_to(parse_instant(at(T0, days=1)))
        state = driver.persons[PERSON]
        assert state.esc is None
        assert not any(name.startswith("esc:") for name in state.req or ())

    def test_escalated_never_reaches_the_alerts_output(self) -> None:
        events = [travel(PERSON, T0), sampling(PERSON, TUBE, T0)]
        alerts, escalations, _ = run_escalations(events, until=at(T0, days=3))
        assert escalations
        assert {a["kind"] for a in alerts} <= set(ALERT_KINDS)
        assert "escalated" not in ALERT_KINDS


def _line(item: dict[str, Any]) -> bytes:
    import json

    return json.dumps(item).encode()


def test_two_alerts_of_a_subject_escalating_at_one_instant_are_two_escalations() -> None:
    # given two alerts of one person, one at its third level when the other reaches its second
    pol = default_policy()
    ctx = Context(pol, Calendar(pol.zone, pol.daily_cutoff), epoch(at(T0, hours=6)))
    st = PersonState()
    due = epoch(at(T0, hours=6))
    # when both escalate at that instant
    for of, level in ((UNLOCATED, 3), (SLA, 2)):
        raise_alert(ctx, st, kind="escalated", subject=PERSON, due=due,
                    details={"alert_id": of, "alert_kind": "unlocated", "level": level})
    # then each is escalated, under an id of its own
    assert [e.details["alert_id"] for e in ctx.out.escalations] == [UNLOCATED, SLA]
    assert len({e.alert_id for e in ctx.out.escalations}) == 2
