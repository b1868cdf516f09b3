"""What the application layer gives a web console, on a real ledger (SQLite and PostgreSQL):
the day's board ranked by what is behind and its trend, counts that stop at a bound, counts by
two columns, many actions at once, an audited view of a timeline, a round's coverage over time
and the catch-up list's sheets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert, DailyReport, RoundReport, RoundRow
from closedloop.schemas.policy import default_policy
from closedloop.streams.app import actions, alerts, catchup, reports, timeline, today
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import models, store

T0 = datetime(2022, 9, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CITY = Caller.command_line("op-city")
PUDONG = Caller("op-pudong", "operator", frozenset({"pudong"}))


def _alert(kind: str, subject: str, district: str | None, hours: int = 0,
           details: dict[str, object] | None = None) -> Alert:
    due = T0 + timedelta(hours=hours)
    return Alert(alert_id=alert_id(kind, subject, int(due.timestamp())), kind=kind,  # type: ignore[arg-type]
                 subject=subject, person_id=subject, tube_id=None, district=district,
                 due_at=due.isoformat(), raised_at=due.isoformat(), details=details or {})


def _report(district: str, day: date, overdue: int) -> DailyReport:
    return DailyReport(district=district, date=day.isoformat(), pushed=10, located=9,
                       under_control=8, followup_overdue_open=overdue, tests_missed=1,
                       positives=0)


# xuhui: many overdue follow-ups, nothing escalated; jingan: one alert at the city command;
# pudong: one at the district command; an orphan result with no district
XUHUI = [_alert("followup_overdue", f"p:x{n}", "xuhui", n) for n in range(3)]
JINGAN_L3 = _alert("positive", "p:j1", "jingan")
PUDONG_L2 = _alert("test_missed", "p:p1", "pudong")
PUDONG_OTHER = _alert("round_missed", "p:p2", "pudong", 1,
                      {"rounds": ["r1"], "grid": "g-1"})
ORPHAN = _alert("orphan_result", "tb-9", None)
DAY = date(2022, 9, 7)


@pytest.fixture
def filled(ledger: Engine) -> Iterator[Engine]:
    with ledger.begin() as connection:
        store.add_alerts(connection, [*XUHUI, JINGAN_L3, PUDONG_L2, PUDONG_OTHER, ORPHAN])
        for alert, level in ((JINGAN_L3, 2), (JINGAN_L3, 3), (PUDONG_L2, 2)):
            store.note_escalations(connection, [_alert("escalated", alert.subject, None,
                                                       level, {"alert_id": alert.alert_id,
                                                               "alert_kind": alert.kind,
                                                               "level": level})])
        # reports on 09-05 and 09-07 (none on 09-06): the trend has a gap there
        store.upsert_reports(connection, [
            _report("xuhui", DAY - timedelta(days=2), 1), _report("pudong", DAY, 2),
            _report("xuhui", DAY, 7), _report("jingan", DAY, 0)])
        store.record_run(connection, command="replay", started_at=T0, finished_at=T0,
                         clock=T0 + timedelta(days=1), events_read=1, ledger_actions=0)
    yield ledger


def test_the_board_ranks_escalations_first_then_overdue_follow_ups(filled: Engine) -> None:
    with filled.connect() as connection:
        board = today.board(connection, CITY, default_policy())
    assert board.day == DAY
    assert [row["district"] for row in board.rows] == ["jingan", "pudong", "xuhui", None]
    jingan, pudong, xuhui, none = board.rows
    assert (jingan["level3"], jingan["level2"], jingan["open"]) == (1, 0, 1)
    assert (pudong["level2"], pudong["open"], pudong["followup_overdue_open"]) == (1, 2, 2)
    assert (xuhui["open"], xuhui["followup_overdue_open"]) == (3, 7)
    # the orphan result has no district: a row of its own, with no report
    assert (none["open"], none["reported"], none["followup_overdue_open"]) == (1, False, None)
    assert board.total["open"] == 7 and board.total["followup_overdue_open"] == 9
    # 14 days ending on the latest report day; no report on 09-06 is a gap, not a zero
    assert len(board.trend["xuhui"]) == 14 and board.trend["xuhui"][-1] == (DAY, 7)
    assert board.trend["xuhui"][-2] == (DAY - timedelta(days=1), None)
    assert board.trend["xuhui"][-3] == (DAY - timedelta(days=2), 1)


def test_a_district_board_holds_its_districts_only(filled: Engine) -> None:
    with filled.connect() as connection:
        board = today.board(connection, PUDONG, default_policy())
    assert [row["district"] for row in board.rows] == ["pudong"]
    assert set(board.trend) == {"pudong"} and board.total["open"] == 2


def test_an_empty_ledger_is_a_board_without_a_day(ledger: Engine) -> None:
    with ledger.connect() as connection:
        board = today.board(connection, CITY, default_policy())
    assert (board.day, board.rows, board.trend) == (None, [], {})


def test_a_bounded_count_stops_and_says_there_are_more(filled: Engine) -> None:
    with filled.connect() as connection:
        capped = alerts.list_alerts(connection, CITY, limit=2, count_limit=4)
        exact = alerts.list_alerts(connection, CITY, limit=2, count_limit=7)
        unbounded = alerts.list_alerts(connection, CITY, limit=2)
    assert (len(capped.rows), capped.total, capped.more) == (2, 4, True)
    assert (exact.total, exact.more) == (7, False)
    assert (unbounded.total, unbounded.more) == (7, False)


def test_counts_by_district_and_level(filled: Engine) -> None:
    with filled.connect() as connection:
        counts = alerts.count_alerts_by(connection, CITY, alerts.AlertFilter(states=alerts.OPEN))
        scoped = alerts.count_alerts_by(connection, PUDONG, by=("kind",))
    assert counts == {("xuhui", "1"): 3, ("jingan", "3"): 1, ("pudong", "2"): 1,
                      ("pudong", "1"): 1, (None, "1"): 1}
    assert scoped == {("test_missed",): 1, ("round_missed",): 1}


def test_many_actions_at_once_refuse_only_those_that_break_the_rule(filled: Engine) -> None:
    requests = [actions.ActionRequest(a, "ack", note="on it")
                for a in (PUDONG_L2.alert_id, JINGAN_L3.alert_id, PUDONG_OTHER.alert_id)]
    done = actions.act_many(filled, PUDONG, requests, via="ledger")
    assert isinstance(done[0], actions.ActionResult)
    # another district's alert is unknown to this caller, like an id that does not exist
    assert isinstance(done[1], actions.ActionRefused) and done[1].reason == "unknown_alert"
    assert isinstance(done[2], actions.ActionResult)
    with filled.connect() as connection:
        states = dict(connection.execute(select(models.Alert.alert_id, models.Alert.state)).all())
    assert states[PUDONG_L2.alert_id] == states[PUDONG_OTHER.alert_id] == "acknowledged"
    assert states[JINGAN_L3.alert_id] == "raised"


def test_viewing_a_timeline_is_audited_even_when_it_shows_nothing(filled: Engine) -> None:
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    with filled.begin() as connection:
        shown = timeline.view(connection, PUDONG, PUDONG_L2.subject, via="console", at=at)
        hidden = timeline.view(connection, PUDONG, JINGAN_L3.subject, via="console", at=at)
    assert [entry.what for entry in shown] == ["alert", "escalation"]
    assert shown[0].facts["kind"] == "test_missed" and shown[1].facts["level"] == 2
    assert hidden == []
    with filled.connect() as connection:
        views = connection.execute(select(
            models.TimelineView.operator_id, models.TimelineView.subject,
            models.TimelineView.viewed_at, models.TimelineView.via,
            models.TimelineView.entries).order_by(models.TimelineView.id)).all()
    assert [tuple(v) for v in views] == [
        ("op-pudong", PUDONG_L2.subject, at, "console", 2),
        ("op-pudong", JINGAN_L3.subject, at, "console", 0)]


def test_a_rounds_coverage_over_time_per_district(ledger: Engine) -> None:
    def row(district: str, in_scope: int, sampled: int) -> RoundRow:
        return RoundRow(district=district, in_scope=in_scope, sampled=sampled,
                        missed=in_scope - sampled, caught_up=0, not_on_roster=0,
                        catchup_median_hours=None)

    with ledger.begin() as connection:
        store.upsert_round_reports(connection, [
            RoundReport(round_id="r1", stage="progress", as_of="2022-09-07T09:00:00+08:00",
                        rows=[row("pudong", 10, 4), row("xuhui", 0, 0)]),
            RoundReport(round_id="r1", stage="close", as_of="2022-09-07T18:00:00+08:00",
                        rows=[row("pudong", 10, 9), row("xuhui", 5, 5)])])
    with ledger.connect() as connection:
        city = reports.round_coverage(connection, CITY, "r1")
        pudong = reports.round_coverage(connection, PUDONG, "r1")
    assert [(stage, share) for _, stage, share in city["pudong"]] == [("progress", 0.4),
                                                                       ("close", 0.9)]
    assert [share for _, _, share in city["xuhui"]] == [None, 1.0]
    assert set(pudong) == {"pudong"}


def test_the_catchup_lists_sheets_are_named_by_district_and_grid(filled: Engine) -> None:
    with filled.connect() as connection:
        grids = catchup.catchup_list(connection, CITY, ("r1",))
    assert [(name, len(rows)) for name, rows in catchup.sheets(grids)] == [("pudong g-1", 1)]


def test_known_districts_and_kinds_are_the_callers_read_value_by_value(filled: Engine) -> None:
    with filled.connect() as connection:
        assert alerts.known_values(connection, CITY, "district") == ["jingan", "pudong",
                                                                     "xuhui"]
        assert alerts.known_values(connection, PUDONG, "district") == ["pudong"]
        from closedloop.schemas.outputs import ALERT_KINDS
        from closedloop.streams.ledger import queries

        # the contract's kinds always; of the ledger's beyond them, only those of the
        # caller's districts
        assert set(alerts.known_values(connection, PUDONG, "kind")) == set(ALERT_KINDS)
        assert queries.distinct_values(connection, "kind", PUDONG.districts) == [
            "round_missed", "test_missed"]
        assert queries.kinds_present(connection, ["positive", "test_missed"],
                                     frozenset({"pudong"})) == ["test_missed"]
        # an account's districts are those of its scope that hold an alert
        assert queries.distinct_values(connection, "district",
                                       frozenset({"pudong", "xuhui", "nowhere"})) == [
            "pudong", "xuhui"]


def test_a_round_with_a_report_is_known_without_reading_the_alerts(ledger: Engine) -> None:
    with ledger.begin() as connection:
        store.upsert_round_reports(connection, [RoundReport(
            round_id="r-reported", stage="close", as_of=T0.isoformat(), rows=[])])
        store.add_alerts(connection, [_alert("round_missed", "p:only", "pudong", 0,
                                             {"rounds": ["r-alerts-only"]})])
    with ledger.connect() as connection:
        assert alerts.reported_rounds(connection) == ["r-reported"]
        for known in ("r-reported", "r-alerts-only"):
            alerts.check_filters(connection, CITY, alerts.AlertFilter(rounds=(known,)))
        with pytest.raises(alerts.UnknownValue):
            alerts.check_filters(connection, CITY, alerts.AlertFilter(rounds=("r-none",)))


@pytest.mark.integration
def test_the_consoles_postgresql_connections_plan_each_query_for_its_values(
    pg_schema_url: str,
) -> None:
    from sqlalchemy import text

    from closedloop.streams.ledger.engine import custom_plans, open_engine

    engine = custom_plans(open_engine(pg_schema_url))
    try:
        for _ in range(2):  # and still after the pool's rollback of the first use
            with engine.connect() as connection:
                assert connection.execute(text("SHOW plan_cache_mode")).scalar_one() == (
                    "force_custom_plan")
                connection.rollback()
    finally:
        engine.dispose()
