"""``replay --ledger`` records an alert's whole lifecycle, as the Kafka sink does: an ``action``
line acknowledges or resolves its alert, and an escalation sets the alert's level.

The scenario: a traveller pushed at 09:00 (T0) and never located, so ``unlocated`` is raised
at 11:00 and, unhandled, escalates to level 2 at 13:00 and level 3 at 15:00.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import T0, action, at, epoch, to_line, travel
from ledger_samples import Partition
from sqlalchemy import select

from closedloop.schemas.ids import alert_id
from closedloop.schemas.instants import parse_instant
from closedloop.schemas.policy import default_policy
from closedloop.streams.app import replay
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.cli import main
from closedloop.streams.ledger import models
from closedloop.streams.ledger.embedded import ReplayLedger
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import upgrade
from closedloop.streams.ledger.sink import write_batch

PERSON = "traveller-01"
UNLOCATED = alert_id("unlocated", PERSON, epoch(at(T0, hours=2)))
UNTIL = at(T0, hours=8)
LIFECYCLE = ("state", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "note",
             "escalation_level", "escalated_at")


def _replay(tmp_path: Path, url: str, lines: list[Any]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(to_line(line) + b"\n" for line in lines))
    assert main(["replay", str(source), "--until", UNTIL, "--alerts", str(tmp_path / "a.jsonl"),
                 "--ledger", url, "--quiet"]) == 0


def _rows(url: str) -> dict[str, dict[str, Any]]:
    """Each alert's row by alert_id, instants as epoch seconds (SQLite forgets offsets)."""
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(models.Alert.__table__)).mappings().all()
    finally:
        engine.dispose()
    return {row["alert_id"]: {k: _plain(row[k]) for k in LIFECYCLE} for row in rows}


def _plain(value: Any) -> Any:
    return int(value.timestamp()) if isinstance(value, datetime) else value


def test_an_action_line_acknowledges_its_alert(tmp_path: Path, sqlite_url: str) -> None:
    # given the unlocated alert, acknowledged at 11:30 with a note
    lines = [travel(PERSON, T0),
             action(UNLOCATED, PERSON, at(T0, hours=2, minutes=30), operator_id="op-017",
                    note="calling the hotel")]
    # when replayed into the ledger
    _replay(tmp_path, sqlite_url, lines)
    # then its row is acknowledged, by whom, when, with the note, and it never escalated
    row = _rows(sqlite_url)[UNLOCATED]
    assert row == {"state": "acknowledged", "acknowledged_at": epoch(at(T0, hours=2, minutes=30)),
                   "acknowledged_by": "op-017", "resolved_at": None, "resolved_by": None,
                   "note": "calling the hotel", "escalation_level": None, "escalated_at": None}


def test_an_action_line_resolves_its_alert_and_list_open_drops_it(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the unlocated alert acknowledged, then resolved; another traveller's left open
    lines = [travel(PERSON, T0), travel("traveller-02", T0),
             action(UNLOCATED, PERSON, at(T0, hours=2, minutes=10)),
             action(UNLOCATED, PERSON, at(T0, hours=2, minutes=40), "resolve")]
    # when replayed into the ledger
    _replay(tmp_path, sqlite_url, lines)
    # then the row is resolved, and `alerts list --open` shows only the other one
    row = _rows(sqlite_url)[UNLOCATED]
    assert (row["state"], row["resolved_at"]) == ("resolved", epoch(at(T0, hours=2, minutes=40)))
    capsys.readouterr()
    assert main(["alerts", "list", "--open", "--url", sqlite_url, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["subject"] for a in listed] == ["traveller-02"]


def test_escalations_set_the_level_of_the_unhandled_alert(
    tmp_path: Path, sqlite_url: str
) -> None:
    # given nobody handles the unlocated alert
    _replay(tmp_path, sqlite_url, [travel(PERSON, T0)])
    # then its row is at level 3 since 15:00 (level 2 came at 13:00), still raised
    row = _rows(sqlite_url)[UNLOCATED]
    assert (row["state"], row["escalation_level"], row["escalated_at"]) == (
        "raised", 3, epoch(at(T0, hours=6)))


def test_an_action_flushed_before_its_alert_is_raised_still_lands(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a flush after every output, and an ack at 11:01 whose own time moves the clock only
    # to 10:56 (less the lateness): a bad line then flushes the ack before the alert exists
    monkeypatch.setattr(replay, "FLUSH_EVERY", 1)
    lines = [travel(PERSON, T0), action(UNLOCATED, PERSON, at(T0, hours=2, minutes=1)),
             b"{not json"]
    # when replayed into the ledger (the alert is raised by --until, in the last flush)
    _replay(tmp_path, sqlite_url, lines)
    # then the ack found its alert all the same
    assert _rows(sqlite_url)[UNLOCATED]["state"] == "acknowledged"


def test_the_replayed_ledger_holds_what_the_sink_records(tmp_path: Path) -> None:
    # given a run with an ack, a resolve, and alerts left to escalate
    lines = [travel(PERSON, T0), travel("traveller-02", T0),
             action(UNLOCATED, PERSON, at(T0, hours=2, minutes=30)),
             action(UNLOCATED, PERSON, at(T0, hours=3), "resolve", note="located")]
    replayed, sunk = (f"sqlite:///{tmp_path / name}" for name in ("replayed.db", "sunk.db"))
    alerts, escalations = io.BytesIO(), io.BytesIO()
    # when replayed into one ledger...
    ledger = ReplayLedger.open(replayed)
    try:
        replay_lines((to_line(line) for line in lines), default_policy(),
                     until=parse_instant(UNTIL), alerts_out=alerts, escalations_out=escalations,
                     ledger=ledger)
    finally:
        ledger.close()
    # ...and its alerts, escalations and the actions, as topics, sunk into another
    topics = {name: Partition(name) for name in ("alerts", "escalations", "action")}
    records = [topics["alerts"].record(json.loads(line)) for line in alerts.getvalue().split()]
    records += [topics["escalations"].record(json.loads(line))
                for line in escalations.getvalue().split()]
    records += [topics["action"].record(line["value"]) for line in lines
                if line["topic"] == "action"]
    upgrade(sunk)
    engine = open_engine(sunk)
    try:
        with engine.begin() as connection:
            write_batch(connection, records)
    finally:
        engine.dispose()
    # then both hold the same alerts with the same lifecycle, escalations included
    rows = _rows(replayed)
    assert rows == _rows(sunk)
    assert rows[UNLOCATED]["state"] == "resolved"
    assert {row["escalation_level"] for row in rows.values()} >= {3}
    assert msgspec.json.decode(escalations.getvalue().split()[0])["kind"] == "escalated"


def _run_into(tmp_path: Path, url: str, lines: list[Any], until: str,
              capsys: pytest.CaptureFixture[str]) -> str:
    """Replay ``lines`` into the ledger at ``url`` up to ``until``; returns the summary."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(to_line(line) + b"\n" for line in lines))
    capsys.readouterr()
    assert main(["replay", str(source), "--until", until, "--alerts", str(tmp_path / "a.jsonl"),
                 "--ledger", url]) == 0
    return capsys.readouterr().err


@pytest.mark.parametrize("action_name", ["ack", "resolve"])
def test_an_alert_handled_in_the_ledger_escalates_no_further_in_later_runs(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str], action_name: str
) -> None:
    # given a first run to 12:00: the 11:00 alert is raised, not yet escalated (13:00)
    lines = [travel(PERSON, T0), travel("traveller-02", T0)]
    _run_into(tmp_path, sqlite_url, lines, at(T0, hours=3), capsys)
    # when an operator handles it in the ledger today, with no broker
    capsys.readouterr()
    assert main(["alerts", action_name, UNLOCATED, "--operator", "op-017", "--via", "ledger",
                 "--ledger", sqlite_url]) == 0
    # and the city is replayed again into the same ledger, further, to 20:00
    err = _run_into(tmp_path, sqlite_url, lines, UNTIL, capsys)
    # then the handled alert escalated no further (the other traveller's went to level 3),
    # and the engine's clock was not moved to today by the action
    rows = _rows(sqlite_url)
    other = alert_id("unlocated", "traveller-02", epoch(at(T0, hours=2)))
    assert rows[UNLOCATED]["escalation_level"] is None
    assert rows[other]["escalation_level"] == 3
    done = "acknowledged" if action_name == "ack" else "resolved"
    assert f"operator actions 1 (1 of them recorded in the ledger): 1 alert {done}" in err
    assert f"clock at end {UNTIL}" in err
    # and the action takes effect at the ledger's clock (the first run's end), not today
    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            audit = connection.execute(select(models.AlertAction)).mappings().one()
    finally:
        engine.dispose()
    assert int(audit["effective_at"].timestamp()) == epoch(at(T0, hours=3))
    assert audit["acted_at"] > audit["effective_at"]


def test_replay_says_what_the_files_actions_did(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given two alerts resolved, one acknowledged, and one action naming another subject
    people = [f"traveller-{n:02d}" for n in range(1, 4)]
    ids = [alert_id("unlocated", p, epoch(at(T0, hours=2))) for p in people]
    lines = [*(travel(p, T0) for p in people),
             action(ids[0], people[0], at(T0, hours=2, minutes=10), "resolve"),
             action(ids[1], people[1], at(T0, hours=2, minutes=10), "resolve"),
             action(ids[2], people[2], at(T0, hours=2, minutes=10)),
             action(ids[2], people[0], at(T0, hours=2, minutes=20), "resolve")]
    # when replayed into the ledger
    err = _run_into(tmp_path, sqlite_url, lines, UNTIL, capsys)
    # then the summary says what they did, and why one did nothing
    assert ("operator actions 4: 2 alerts resolved, 1 acknowledged; 1 action ignored: its "
            "subject is not the alert's") in err
    # and the ledger agrees: the mismatched resolve is audited as ignored, the alert only
    # acknowledged (and not escalated: the ack came in time)
    rows = _rows(sqlite_url)
    assert [rows[i]["state"] for i in ids] == ["resolved", "resolved", "acknowledged"]
    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            audit = connection.execute(select(models.AlertAction).order_by(
                models.AlertAction.id)).mappings().all()
    finally:
        engine.dispose()
    assert [(a["via"], a["outcome"], a["reason"]) for a in audit] == [
        ("replay", "applied", None)] * 3 + [("replay", "ignored", "not_subjects_alert")]


def test_a_later_city_says_the_ledgers_actions_are_about_alerts_it_does_not_raise(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an alert of a first city acknowledged in the ledger
    _run_into(tmp_path, sqlite_url, [travel(PERSON, T0)], at(T0, hours=3), capsys)
    assert main(["alerts", "ack", UNLOCATED, "--operator", "op-017", "--via", "ledger",
                 "--ledger", sqlite_url]) == 0
    # when another city, whose people are others, is replayed into the same ledger
    err = _run_into(tmp_path, sqlite_url, [travel("traveller-09", T0)], UNTIL, capsys)
    # then the summary says the action is about an alert this input does not raise (the
    # engine could only call it "its subject is not the alert's"), and the ledger keeps it
    assert ("operator actions: 1 action recorded in the ledger is about alerts this input "
            "does not raise (left as they were)") in err
    assert "not the alert's" not in err
    assert _rows(sqlite_url)[UNLOCATED]["state"] == "acknowledged"
    # and an action on an alert the input does raise is counted as before, beside it
    err = _run_into(tmp_path, sqlite_url, [travel(PERSON, T0), travel("traveller-09", T0)],
                    UNTIL, capsys)
    assert ("operator actions 1 (1 of them recorded in the ledger): 1 alert acknowledged"
            in err)
