"""The application layer on a real ledger (SQLite and PostgreSQL): who sees what, who may do
what, the one rule for actions, filters that refuse what the ledger has never seen, the
catch-up list per grid and a subject's timeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert, DeadLetter, PersonStatus
from closedloop.schemas.policy import default_policy
from closedloop.streams.app import actions, alerts, catchup, reports, timeline
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import models, store

CLOSE = datetime(2022, 9, 7, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
CITY = Caller.command_line("op-city")
PUDONG = Caller("op-pudong", "operator", frozenset({"pudong"}))
VIEWER = Caller("op-view", "viewer", None)


def _alert(kind: str, subject: str, district: str | None, hours: int = 0,
           details: dict[str, object] | None = None) -> Alert:
    due = CLOSE + timedelta(hours=hours)
    return Alert(alert_id=alert_id(kind, subject, int(due.timestamp())), kind=kind,  # type: ignore[arg-type]
                 subject=subject, person_id=None if kind == "lab_sla_breached" else subject,
                 tube_id=subject if kind == "lab_sla_breached" else None, district=district,
                 due_at=due.isoformat(), raised_at=due.isoformat(), details=details or {})


MISSED_GRID = _alert("round_missed", "p:aaa", "pudong", 0, {"rounds": ["r1"], "grid": "g-1"})
MISSED_NONE = _alert("round_missed", "p:bbb", "pudong", 0, {"rounds": ["r1"], "grid": None})
MISSED_XUHUI = _alert("round_missed", "p:ccc", "xuhui", 0, {"rounds": ["r1"], "grid": "g-9"})
POSITIVE = _alert("positive", "p:ddd", "xuhui", 2)
ORPHAN = _alert("orphan_result", "tb-001", None, 3)
ALL = [MISSED_GRID, MISSED_NONE, MISSED_XUHUI, POSITIVE, ORPHAN]


@pytest.fixture
def filled(ledger: Engine) -> Iterator[Engine]:
    with ledger.begin() as connection:
        store.add_alerts(connection, ALL)
        store.record_run(connection, command="replay", started_at=CLOSE, finished_at=CLOSE,
                         clock=CLOSE + timedelta(days=1), events_read=1, ledger_actions=0)
    yield ledger


def _ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["alert_id"] for row in rows]


def test_a_district_caller_sees_its_districts_only_and_no_alert_without_one(
    filled: Engine,
) -> None:
    with filled.connect() as connection:
        city = alerts.list_alerts(connection, CITY)
        pudong = alerts.list_alerts(connection, PUDONG)
        # another district's alert is "not found", exactly like an unknown id
        assert alerts.find_alert(connection, PUDONG, POSITIVE.alert_id) is None
        assert alerts.find_alert(connection, PUDONG, "al-nosuch") is None
        assert alerts.find_alert(connection, CITY, ORPHAN.alert_id) is not None
        counts = alerts.count_alerts(connection, PUDONG, by="district")
    assert city.total == 5 and sorted(_ids(city.rows)) == sorted(a.alert_id for a in ALL)
    assert pudong.total == 2 and set(_ids(pudong.rows)) == {MISSED_GRID.alert_id,
                                                            MISSED_NONE.alert_id}
    assert counts == {"pudong": 2}


def test_unknown_filter_values_are_refused_with_the_known_ones_closest_first(
    filled: Engine,
) -> None:
    with filled.connect() as connection:
        with pytest.raises(alerts.UnknownValue) as district:
            alerts.check_filters(connection, CITY, alerts.AlertFilter(districts=("Pudong",)))
        with pytest.raises(alerts.UnknownValue) as kind:
            alerts.check_filters(connection, CITY, alerts.AlertFilter(kinds=("positve",)))
        # a district caller is not told of other districts
        with pytest.raises(alerts.UnknownValue) as hidden:
            alerts.check_filters(connection, PUDONG, alerts.AlertFilter(districts=("xuhui",)))
        # a contract kind the ledger has no alert of is no typo
        alerts.check_filters(connection, CITY, alerts.AlertFilter(kinds=("unlocated",)))
    assert district.value.known == ["pudong", "xuhui"]
    assert kind.value.known[0] == "positive"
    assert hidden.value.known == ["pudong"]


def test_severity_puts_positives_first(filled: Engine) -> None:
    with filled.connect() as connection:
        page = alerts.list_alerts(connection, CITY, sort="severity", limit=2)
    assert page.total == 5
    assert [row["kind"] for row in page.rows] == ["positive", "orphan_result"]
    assert all(row["level"] == 1 for row in page.rows)


def test_ack_via_the_ledger_is_audited_and_takes_effect_at_the_ledgers_clock(
    filled: Engine,
) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    request = actions.ActionRequest(MISSED_GRID.alert_id, "ack", note="on it")
    result = actions.act(filled, PUDONG, request, via="ledger", now=now)
    # the ledger's clock (the last replay's) is earlier than the wall time: it is used
    assert result.effective_at == CLOSE + timedelta(days=1)
    assert result.acted_at == now
    with filled.connect() as connection:
        row = alerts.find_alert(connection, CITY, MISSED_GRID.alert_id)
        audit = connection.execute(select(models.AlertAction)).mappings().one()
    assert row is not None
    assert (row["state"], row["acknowledged_by"], row["note"]) == ("acknowledged",
                                                                   "op-pudong", "on it")
    assert (row["last_action"], row["last_by"]) == ("ack", "op-pudong")
    assert (audit["via"], audit["outcome"], audit["reason"]) == ("ledger", "applied", None)


def test_the_rule_refuses_unknown_other_districts_closed_and_other_subjects(
    filled: Engine,
) -> None:
    def refused(caller: Caller, request: actions.ActionRequest) -> str:
        with pytest.raises(actions.ActionRefused) as exc:
            actions.act(filled, caller, request, via="ledger")
        return exc.value.reason

    assert refused(CITY, actions.ActionRequest("al-nosuch", "ack")) == "unknown_alert"
    assert refused(PUDONG, actions.ActionRequest(POSITIVE.alert_id, "ack")) == "unknown_alert"
    assert refused(CITY, actions.ActionRequest(POSITIVE.alert_id, "ack",
                                               subject="p:other")) == "not_subjects_alert"
    assert refused(VIEWER, actions.ActionRequest(POSITIVE.alert_id, "ack")) == "forbidden"
    assert refused(CITY, actions.ActionRequest(POSITIVE.alert_id, "assign")) == "bad_request"
    assert refused(CITY, actions.ActionRequest(POSITIVE.alert_id, "acknowledge")) == (
        "bad_request")
    assert refused(CITY, actions.ActionRequest(POSITIVE.alert_id, "ack",
                                               note="call 13912345678")) == "bad_request"
    actions.act(filled, CITY, actions.ActionRequest(POSITIVE.alert_id, "resolve"), via="ledger")
    assert refused(CITY, actions.ActionRequest(POSITIVE.alert_id, "ack")) == "alert_closed"
    with filled.connect() as connection:
        audit = connection.execute(select(models.AlertAction)).mappings().all()
    assert [(a["action"], a["outcome"]) for a in audit] == [("resolve", "applied")]


def test_an_action_naming_another_subject_is_audited_as_ignored_and_changes_nothing(
    filled: Engine,
) -> None:
    # given an action from the action topic whose subject is not the alert's
    record = store.ActionRecord(
        event_id="act-1", alert_id=POSITIVE.alert_id, subject="p:other", action="resolve",
        operator_id="op-1", acted_at=CLOSE, effective_at=CLOSE, via="kafka")
    with filled.begin() as connection:
        first = store.apply_action(connection, record)
        again = store.apply_action(connection, record)  # redelivered
    with filled.connect() as connection:
        row = alerts.find_alert(connection, CITY, POSITIVE.alert_id)
        audit = connection.execute(select(models.AlertAction)).mappings().all()
    assert first == again == ("ignored", "not_subjects_alert")
    assert row is not None and row["state"] == "raised"
    assert len(audit) == 1 and audit[0]["reason"] == "not_subjects_alert"


def test_assign_sets_the_assignee_and_keeps_the_status(filled: Engine) -> None:
    actions.act(filled, CITY, actions.ActionRequest(POSITIVE.alert_id, "assign",
                                                    assignee="op-017"), via="ledger")
    with filled.connect() as connection:
        row = alerts.find_alert(connection, CITY, POSITIVE.alert_id)
    assert row is not None and (row["state"], row["assignee"]) == ("raised", "op-017")


def test_caught_up_persons_leave_the_pending_catchup_list_per_grid(filled: Engine) -> None:
    # given p:aaa sampled 3 h after the close (and again two days later), p:bbb never
    sampled = [(CLOSE + timedelta(hours=3)).isoformat(), (CLOSE + timedelta(days=2)).isoformat()]
    status = PersonStatus(person_id="p:aaa", district="pudong", updated_at=sampled[-1],
                          under_control=False, push=None, cohorts=[], open_requirements=[],
                          last_sampled_at=sampled[-1], last_result=None, samplings=sampled)
    with filled.begin() as connection:
        store.put_person_states(connection, {"p:aaa": status})
        closed = store.close_caught_up(connection, ["p:aaa", "p:bbb"], 24 * 3600)
    with filled.connect() as connection:
        every = catchup.catchup_list(connection, PUDONG, ["r1"])
        pending = catchup.catchup_list(connection, PUDONG, ["r1"], pending=True)
    # then the first catch-up sampling closed p:aaa's alert, and only p:bbb is pending
    assert closed == 1
    assert [(g.district, g.grid, [r["person"] for r in g.rows]) for g in every] == [
        ("pudong", "g-1", ["p:aaa"]), ("pudong", None, ["p:bbb"])]
    assert every[0].rows[0]["state"] == "caught_up"
    assert every[0].rows[0]["caught_up_at"] == CLOSE + timedelta(hours=3)
    assert [(g.grid, [r["person"] for r in g.rows]) for g in pending] == [(None, ["p:bbb"])]


def test_where_actions_go_by_default() -> None:
    assert actions.default_via({}) == "ledger"
    assert actions.default_via({"CLOSEDLOOP_KAFKA": "broker:9092"}) == "kafka"
    assert actions.default_via({"CLOSEDLOOP_KAFKA": "b:9092",
                                "CLOSEDLOOP_ACTIONS_VIA": "ledger"}) == "ledger"
    with pytest.raises(ValueError, match="CLOSEDLOOP_ACTIONS_VIA"):
        actions.default_via({"CLOSEDLOOP_ACTIONS_VIA": "carrier-pigeon"})


def test_a_subjects_timeline_is_in_time_order(filled: Engine) -> None:
    actions.act(filled, CITY, actions.ActionRequest(POSITIVE.alert_id, "ack"), via="ledger",
                now=CLOSE + timedelta(hours=3))
    escalation = Alert(alert_id="al-esc", kind="escalated", subject="p:ddd", person_id="p:ddd",  # type: ignore[arg-type]
                       tube_id=None, district="xuhui",
                       due_at=(CLOSE + timedelta(hours=4)).isoformat(),
                       raised_at=(CLOSE + timedelta(hours=4)).isoformat(),
                       details={"alert_id": POSITIVE.alert_id, "level": 2})
    letter = DeadLetter(reason="wrong_type", message="pool_size must be an integer",
                        topic="sampling", partition=None, offset=None, line=7,
                        original='{"topic": "sampling", "value": {"person_id": "p:ddd", '
                                 '"tube_id": "tb-9", "pool_size": "x"}}',
                        original_encoding="utf-8")
    with filled.begin() as connection:
        store.note_escalations(connection, [escalation])
        store.add_dead_letters(connection, [letter], CLOSE + timedelta(hours=5))
    with filled.connect() as connection:
        entries = timeline.timeline(connection, CITY, "p:ddd")
        tube = timeline.timeline(connection, CITY, "tb-9")
        hidden = timeline.timeline(connection, PUDONG, "p:ddd")
    assert [e.what for e in entries] == ["alert", "action", "escalation"]
    assert [e.what for e in tube] == ["rejected"]  # a sampling's key is its tube
    assert hidden == []


def test_daily_and_round_reports_latest_and_list(filled: Engine) -> None:
    from closedloop.schemas.outputs import DailyReport

    with filled.begin() as connection:
        for day, pushed in (("2022-09-06", 1), ("2022-09-07", 2)):
            for district in ("pudong", "xuhui"):
                store.upsert_reports(connection, [DailyReport(
                    district=district, date=day, pushed=pushed, located=0, under_control=0,
                    followup_overdue_open=0, tests_missed=0, positives=0)])
    with filled.connect() as connection:
        days = reports.report_days(connection, CITY)
        latest = reports.daily(connection, CITY, default_policy())
        mine = reports.daily(connection, PUDONG, default_policy())
        with pytest.raises(reports.NoReport):
            reports.round_table(connection, CITY, "r-none")
    assert [str(day) for day, _ in days] == ["2022-09-07", "2022-09-06"]
    assert str(latest.day) == "2022-09-07" and latest.total["pushed"] == 4
    assert [row["district"] for row in mine.rows] == ["pudong"] and mine.total["pushed"] == 2
