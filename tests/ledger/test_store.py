"""Writing into the ledger is idempotent: the same records twice leave the same rows.

Each test runs on SQLite and on the real PostgreSQL (their ON CONFLICT clauses are
separate SQLAlchemy dialects).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from ledger_samples import Partition, alert, letter, report, status
from sqlalchemy import Engine, select

from closedloop.schemas.ids import spell_digit_runs
from closedloop.schemas.outputs import Escalation
from closedloop.streams.ledger import models, store
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade
from closedloop.streams.ledger.sink import write_batch

NOW = datetime(2022, 9, 8, 1, 0, tzinfo=UTC)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, in a stable order (without the sink's timestamps)."""
    out = {}
    with engine.connect() as connection:
        for table in models.Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in ("updated_at", "id")]
            rows = connection.execute(select(*columns)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def test_a_redelivered_batch_changes_nothing(ledger: Engine) -> None:
    alerts, reports = Partition("alerts"), Partition("daily-report")
    people, letters = Partition("person-status"), Partition("deadletter")
    first = alert(1)
    batch = [
        alerts.record(first), alerts.record(alert(2, "district-b")),
        alerts.record(first),  # the worker sent it twice (at-least-once)
        reports.record(report("district-a")), reports.record(report("district-b")),
        people.record(status("person-0001", "2022-09-07T08:00:00+08:00"), "person-0001"),
        people.record(status("person-0002", "2022-09-07T08:00:00+08:00"), "person-0002"),
        people.record(None, "person-0002"),  # then forgotten: a tombstone
        letters.record(letter(17)), letters.record(letter(None, line=4)),
    ]
    with ledger.begin() as connection:
        counts = write_batch(connection, batch, NOW)
    assert counts["alerts_new"] == 2
    assert counts["reports"] == 2
    assert counts["dead_letters_new"] == 2
    before = snapshot(ledger)
    assert [row[0] for row in before["person_state"]] == ["person-0001"]
    assert len(before["alert"]) == 2

    with ledger.begin() as connection:  # redelivered: skipped by the partitions' marks
        again = write_batch(connection, batch, NOW)
    assert again == {"redelivered": len(batch)}
    assert snapshot(ledger) == before

    with ledger.begin() as connection:  # the marks lost: the writes are idempotent by themselves
        connection.execute(models.Base.metadata.tables["processed_event"].delete())
        write_batch(connection, batch, NOW)
    assert snapshot(ledger) == before


def test_an_alert_keeps_its_lifecycle_when_it_comes_again(ledger: Engine) -> None:
    first = alert(3)
    def act(n: int, action: str, operator: str, note: str | None = None
            ) -> tuple[str, str | None]:
        return store.apply_action(connection, store.ActionRecord(
            event_id=f"act-{n}", alert_id=first.alert_id, subject=first.subject, action=action,
            operator_id=operator, acted_at=NOW, effective_at=NOW, via="kafka", note=note))

    with ledger.begin() as connection:
        assert store.add_alerts(connection, [first]) == 1
        assert act(1, "ack", "operator-1") == ("applied", None)
        assert act(2, "ack", "operator-2") == ("applied", None)  # keeps the first ack
        assert act(3, "resolve", "operator-1", note="called, tested") == ("applied", None)
        assert act(4, "ack", "operator-2") == ("ignored", "alert_closed")
        assert act(1, "ack", "operator-1") == ("applied", None)  # redelivered: as it was
        assert store.add_alerts(connection, [first]) == 0
    table = models.Base.metadata.tables["alert"]
    with ledger.connect() as connection:
        row = connection.execute(select(table)).mappings().one()
    assert row["state"] == "resolved"
    assert row["acknowledged_by"] == "operator-1"
    assert row["note"] == "called, tested"
    assert row["resolved_at"] == NOW
    assert row["due_at"] == datetime.fromisoformat(first.due_at)  # the instant, exactly


def test_an_assignment_hands_an_alert_on_and_leaves_its_state(ledger: Engine) -> None:
    # contract v1.2 §3: assign names an assignee and changes no escalation
    first = alert(4)
    later = NOW + timedelta(hours=1)

    def act(event_id: str, action: str, operator: str, at: datetime,
            assignee: str | None = None) -> tuple[str, str | None]:
        return store.apply_action(connection, store.ActionRecord(
            event_id=event_id, alert_id=first.alert_id, subject=first.subject, action=action,
            operator_id=operator, acted_at=at, effective_at=at, via="kafka",
            assignee=assignee))

    with ledger.begin() as connection:
        store.add_alerts(connection, [first])
        assert act("a-1", "assign", "lead-1", NOW, "operator-2") == ("applied", None)
        assert act("a-2", "ack", "operator-2", NOW) == ("applied", None)
        assert act("a-3", "assign", "lead-1", later, "operator-3") == ("applied", None)
        # delivered again, or an older assignment delivered late: nothing changes
        assert act("a-3", "assign", "lead-1", later, "operator-3") == ("applied", None)
        assert act("a-4", "assign", "lead-2", NOW, "operator-9") == ("applied", None)
    table = models.Base.metadata.tables["alert"]
    with ledger.connect() as connection:
        row = connection.execute(select(table)).mappings().one()
    assert (row["state"], row["assignee"], row["assigned_by"]) == (
        "acknowledged", "operator-3", "lead-1")
    assert row["assigned_at"] == later
    with ledger.begin() as connection:
        assert act("a-5", "resolve", "operator-3", later) == ("applied", None)
        # a resolved alert is closed: assigned to nobody new
        assert act("a-6", "assign", "lead-1", later + timedelta(hours=1), "operator-4") == (
            "ignored", "alert_closed")


def test_the_v12_report_columns_are_kept(ledger: Engine) -> None:
    full = msgspec.structs.replace(
        report("district-a"), entries=40, entries_late=9, entry_lag_p90_minutes=187.5,
        entries_rejected=2, findings_new=3, findings_open=5, rectifications_overdue=1,
        rechecks_failed=1, repeat_offenders=1)
    with ledger.begin() as connection:
        store.upsert_reports(connection, [full, report("district-b")])
    table = models.Base.metadata.tables["daily_report"]
    with ledger.connect() as connection:
        rows = connection.execute(select(table).order_by(table.c.district)).mappings().all()
    assert {name: rows[0][name] for name in store.V12_COLUMNS} == {
        name: getattr(full, name) for name in store.V12_COLUMNS}
    # a report that counts none of them (a stage that does not yet) has 0 and null
    assert rows[1]["entries"] == 0 and rows[1]["entry_lag_p90_minutes"] is None


def test_the_latest_report_and_status_win(ledger: Engine) -> None:
    newer = status("person-0009", "2022-09-07T10:00:00+08:00", district="district-b")
    older = status("person-0009", "2022-09-07T09:00:00+08:00", district="district-a")
    with ledger.begin() as connection:
        store.upsert_reports(connection, [report("district-a", pushed=1)])
        store.upsert_reports(connection, [report("district-a", pushed=2),
                                          report("district-a", pushed=5)])
        store.put_person_states(connection, {"person-0009": newer})
        store.put_person_states(connection, {"person-0009": older})  # late: ignored
    rows = snapshot(ledger)
    assert [r[2] for r in rows["daily_report"]] == [5]
    assert rows["person_state"][0][1] == "district-b"


def test_dead_letters_keep_no_payload(ledger: Engine) -> None:
    with ledger.begin() as connection:
        assert store.add_dead_letters(connection, [letter(5), letter(None, line=9)], NOW) == 2
        assert store.add_dead_letters(connection, [letter(5), letter(None, line=9)], NOW) == 0
    table = models.Base.metadata.tables["dead_letter"]
    assert "original" not in table.columns
    with ledger.connect() as connection:
        origins = sorted(connection.execute(select(table.c.origin)).scalars())
    assert origins[0].startswith("line 9 #")
    assert origins[1] == "unit.travel.v1/0/5"
    assert all("redacted" not in origin for origin in origins)


def test_a_dead_letter_digest_is_keyed_with_the_ledgers_own_secret(
    ledger: Engine, sqlite_url: str,
) -> None:
    # given two ledgers, each with the secret its migration made
    other = open_engine(sqlite_url.replace("ledger.db", "other.db"))
    upgrade(sqlite_url.replace("ledger.db", "other.db"))
    try:
        origins = []
        for engine in (ledger, other):
            with engine.begin() as connection:
                key = store.origin_key(connection)
                assert len(key) == 32
                assert store.origin_key(connection) == key  # the same on every call
                origins.append(store.dead_letter_origin(letter(None, line=9), key))
    finally:
        other.dispose()
    # then the same line gets a different digest in each, neither the plain hash of the line
    plain = hashlib.sha256(letter(None, line=9).original.encode()).hexdigest()[:24]
    assert origins[0] != origins[1]
    assert all(spell_digit_runs(plain) not in origin for origin in origins)


def test_an_undecodable_record_is_skipped_not_fatal(ledger: Engine) -> None:
    alerts = Partition("alerts")
    bad = alerts.record({"alert_id": "al-x"})  # not an Alert: fields missing
    good = alerts.record(alert(7))
    with ledger.begin() as connection:
        counts = write_batch(connection, [bad, good], NOW)
    assert counts == {"undecodable:alerts": 1, "alerts_new": 1, "alerts_seen": 1}
    with ledger.begin() as connection:
        assert write_batch(connection, [bad, good], NOW) == {"redelivered": 2}


def _action(target: Any, kind: str, at: str, note: str | None = None) -> dict[str, Any]:
    """An operator's action event on ``target``, as ``closedloop alerts ack|resolve`` sends it."""
    event = {"event_id": f"act-{kind}-{at}", "occurred_at": at, "alert_id": target.alert_id,
             "subject": target.subject, "action": kind, "operator_id": "operator-7"}
    return event if note is None else {**event, "note": note}


def _lifecycle(engine: Engine, ident: str) -> tuple[Any, ...]:
    table = models.Base.metadata.tables["alert"]
    with engine.connect() as connection:
        return tuple(connection.execute(select(
            table.c.state, table.c.acknowledged_by, table.c.resolved_by, table.c.note,
            table.c.escalation_level,
        ).where(table.c.alert_id == ident)).one())


def test_the_sink_applies_actions_and_escalations_to_the_alert_row(ledger: Engine) -> None:
    alerts, actions, escalations = Partition("alerts"), Partition("action"), Partition(
        "escalations")
    target = alert(3)
    escalated = Escalation(
        alert_id="al-escalated-1", kind="escalated", subject=target.subject,
        person_id=target.person_id, tube_id=None, district=target.district,
        due_at="2022-09-07T05:00:00+08:00", raised_at="2022-09-07T05:00:00+08:00",
        details={"alert_id": target.alert_id, "alert_kind": target.kind, "level": 2},
    )
    # given the alert, its level-2 escalation and an ack in one batch, then a resolve
    with ledger.begin() as connection:
        first = write_batch(connection, [
            alerts.record(target), escalations.record(escalated),
            actions.record(_action(target, "ack", "2022-09-07T05:10:00+08:00")),
        ], NOW)
    acked = _lifecycle(ledger, target.alert_id)
    with ledger.begin() as connection:
        second = write_batch(connection, [
            actions.record(_action(target, "resolve", "2022-09-07T06:00:00+08:00", "retested")),
            actions.record({**_action(target, "ack", "2022-09-07T06:01:00+08:00"),
                            "note": "call 13812345678"}),  # a raw identifier: never stored
        ], NOW)
    # then the row went raised -> acknowledged -> resolved, and records its escalation
    assert first["actions_applied"] == 1 and first["escalations"] == 1
    assert acked == ("acknowledged", "operator-7", None, None, 2)
    assert second == {"actions_applied": 1, "undecodable:action": 1}
    assert _lifecycle(ledger, target.alert_id) == (
        "resolved", "operator-7", "operator-7", "retested", 2)


def _missed(person: str) -> Any:
    from closedloop.schemas.ids import alert_id
    from closedloop.schemas.outputs import Alert

    close = "2022-09-07T18:00:00+08:00"
    return Alert(alert_id=alert_id("round_missed", person, int(
        datetime.fromisoformat(close).timestamp())), kind="round_missed", subject=person,
        person_id=person, tube_id=None, district="district-a", due_at=close, raised_at=close,
        details={"rounds": ["r1"], "grid": "g-1"})


def _sampled(person: str, *times: str) -> Any:
    return msgspec.structs.replace(status(person, times[-1]), last_sampled_at=times[-1],
                                   samplings=list(times))


def test_the_sink_closes_a_caught_up_person_whatever_order_alert_and_status_come_in(
    ledger: Engine,
) -> None:
    # given a person sampled 3 h after the round's close (and again two days later: out of
    # the catch-up window), and another sampled only too late
    late = "2022-09-09T09:00:00+08:00"
    caught = _sampled("person-0001", "2022-09-07T21:00:00+08:00", late)
    too_late = _sampled("person-0002", late)
    alerts, statuses = Partition("alerts"), Partition("person-status")
    records = [alerts.record(_missed("person-0001")), alerts.record(_missed("person-0002"))]
    states = [statuses.record(caught, "person-0001"), statuses.record(too_late, "person-0002")]
    for first, then in ((records, states), (states, records)):
        with ledger.begin() as connection:
            for table in ("alert", "person_state", "processed_event"):
                connection.execute(models.Base.metadata.tables[table].delete())
        # when the sink reads the alerts before the statuses, or after them
        with ledger.begin() as connection:
            write_batch(connection, first, NOW)
        with ledger.begin() as connection:
            write_batch(connection, then, NOW)
        # then the first is caught up at its first catch-up sampling, the other still open
        with ledger.connect() as connection:
            rows = dict(connection.execute(select(
                models.Alert.subject, models.Alert.state)).all())
            at = connection.execute(select(models.Alert.caught_up_at).where(
                models.Alert.subject == "person-0001")).scalar_one()
        assert rows == {"person-0001": "caught_up", "person-0002": "raised"}
        assert at == datetime.fromisoformat("2022-09-07T21:00:00+08:00")


def test_the_sink_audits_an_action_naming_another_subject_and_leaves_the_alert(
    ledger: Engine,
) -> None:
    alerts, actions = Partition("alerts"), Partition("action")
    target = alert(4)
    wrong = {**_action(target, "resolve", "2022-09-07T05:10:00+08:00"), "subject": "person-9"}
    with ledger.begin() as connection:
        counts = write_batch(connection, [alerts.record(target), actions.record(wrong)], NOW)
    assert counts["actions_ignored:not_subjects_alert"] == 1
    assert _lifecycle(ledger, target.alert_id)[0] == "raised"
    with ledger.connect() as connection:
        audit = connection.execute(select(models.AlertAction)).mappings().one()
    assert (audit["via"], audit["outcome"], audit["reason"]) == (
        "kafka", "ignored", "not_subjects_alert")
