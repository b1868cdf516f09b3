"""Supervision findings in the ledger (contract v1.2): the engine's ``unit-status`` records
stored by the sink's one writer, a unit's timeline of findings, rectifications and rechecks,
and the board's open findings per district. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from ledger_samples import Partition
from sqlalchemy import Engine, select

from closedloop.agents import supervision
from closedloop.agents.calendar import Calendar
from closedloop.schemas.events import Inspection
from closedloop.schemas.outputs import DailyReport, UnitStatus
from closedloop.schemas.policy import default_policy
from closedloop.streams.app import timeline, today
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import models, store
from closedloop.streams.ledger.sink import write_batch

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
T0 = datetime(2022, 9, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CITY = Caller.command_line("op-city")
XUHUI = Caller("op-xuhui", "viewer", frozenset({"xuhui"}))
NOW = datetime(2022, 9, 20, tzinfo=UTC)


def at(hours: float) -> int:
    return int((T0 + timedelta(hours=hours)).timestamp())


def record(kind: str, hours: float, finding_id: str, unit: str = "venue-7",
           **fields: Any) -> Inspection:
    value: dict[str, Any] = {
        "event_id": f"{unit}-{kind}-{finding_id}-{hours}",
        "occurred_at": (T0 + timedelta(hours=hours)).isoformat(), "unit_id": unit,
        "unit_kind": "venue", "district": "xuhui", "record": kind, "finding_id": finding_id}
    if kind == "finding":
        value |= {"category": "venue_code", "severity": "major"}
    return msgspec.convert(value | fields, Inspection)


def status(records: list[Inspection], unit: str = "venue-7", as_of: float = 0) -> UnitStatus:
    """The unit's status after ``records``, as the stage publishes it."""
    st = supervision.UnitState()
    for item in records:
        supervision.on_inspection(POLICY, st, item, int(item.occurred_at.timestamp()))
    return supervision.unit_status(POLICY, CAL, unit, st, at(as_of))


VENUE = [record("finding", 0, "f1"), record("rectified", 5, "f1"),
         record("recheck", 30, "f1", result="fail"), record("rectified", 40, "f1"),
         record("recheck", 50, "f1", result="pass"),
         record("finding", 20, "f2", severity="critical", district="jingan")]


def findings(engine: Engine) -> list[tuple[Any, ...]]:
    table = models.Base.metadata.tables["finding"]
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(table.c.unit_id, table.c.finding_id, table.c.district, table.c.severity,
                   table.c.state).order_by(table.c.unit_id, table.c.finding_id))]


def test_the_latest_unit_status_holds_and_an_older_one_moves_nothing_back(
        ledger: Engine) -> None:
    early, late = status(VENUE[:3], as_of=30), status(VENUE, as_of=50)
    with ledger.begin() as connection:
        assert store.put_unit_statuses(connection, [late]) == 2
        store.put_unit_statuses(connection, [early])  # redelivered out of order
    assert findings(ledger) == [("venue-7", "f1", "xuhui", "major", "closed"),
                                ("venue-7", "f2", "jingan", "critical", "open")]
    with ledger.begin() as connection:  # both in one batch: the later one, once
        assert store.put_unit_statuses(connection, [late, early]) == 2
    assert findings(ledger)[0][-1] == "closed"


def test_the_sink_keeps_a_finding_the_engine_forgot_and_ignores_a_tombstone(
        ledger: Engine) -> None:
    units = Partition("unit-status")
    forgotten = UnitStatus(unit_id="venue-7", updated_at=CAL.iso(at(24 * 100)), findings=[])
    batch = [units.record(status(VENUE, as_of=50), "venue-7"),
             units.record(forgotten, "venue-7"), units.record(None, "venue-7")]
    with ledger.begin() as connection:
        counts = write_batch(connection, batch, NOW)
    assert counts["findings"] == 2 and not any(k.startswith("undecodable") for k in counts)
    assert [row[1] for row in findings(ledger)] == ["f1", "f2"]
    with ledger.begin() as connection:  # redelivered: skipped by the partition's mark
        assert write_batch(connection, batch, NOW)["redelivered"] == 3


def test_a_units_timeline_shows_its_findings_rectifications_and_rechecks(
        ledger: Engine) -> None:
    with ledger.begin() as connection:
        store.put_unit_statuses(connection, [status(VENUE, as_of=50)])
    with ledger.connect() as connection:
        city = timeline.timeline(connection, CITY, "venue-7")
        xuhui = timeline.timeline(connection, XUHUI, "venue-7")
    assert [(e.what, e.at - T0) for e in city] == [
        ("finding", timedelta(0)), ("rectified", timedelta(hours=5)),
        ("finding", timedelta(hours=20)), ("recheck", timedelta(hours=30)),
        ("rectified", timedelta(hours=40)), ("recheck", timedelta(hours=50))]
    assert city[0].facts["state"] == "closed" and city[2].facts["state"] == "open"
    assert [e.facts.get("result") for e in city if e.what == "recheck"] == ["fail", "pass"]
    assert "closed by the recheck of 2022-09-08T04:00:00+00:00" in city[0].text
    # a caller of one district sees its findings only
    assert {e.facts["finding_id"] for e in xuhui} == {"f1"}


def test_the_board_counts_open_findings_per_district_and_severity(ledger: Engine) -> None:
    other = [record("finding", 1, "g1", unit="site-3", severity="minor"),
             record("finding", 2, "g2", unit="site-3", severity="critical"),
             record("finding", 3, "g3", unit="site-3", district="jingan", severity="minor"),
             record("recheck", 4, "g3", unit="site-3", result="pass")]
    report = DailyReport(district="xuhui", date="2022-09-06", pushed=0, located=0,
                         under_control=0, followup_overdue_open=0, tests_missed=0,
                         positives=0, findings_new=3, findings_open=2, repeat_offenders=1)
    with ledger.begin() as connection:
        store.put_unit_statuses(connection, [status(VENUE, as_of=50),
                                             status(other, unit="site-3", as_of=4)])
        store.upsert_reports(connection, [report])
    with ledger.connect() as connection:
        city = today.board(connection, CITY, POLICY)
        xuhui = today.board(connection, XUHUI, POLICY)
    rows = {row["district"]: row for row in city.findings}
    # one critical each: then by major, then minor (xuhui has one more minor)
    assert [row["district"] for row in city.findings] == ["xuhui", "jingan"]
    assert {k: rows["jingan"][k] for k in ("critical", "major", "minor", "open_findings")} == {
        "critical": 1, "major": 0, "minor": 0, "open_findings": 1}
    assert rows["jingan"]["findings_new"] is None  # no report of jingan that day
    assert {k: rows["xuhui"][k] for k in ("critical", "major", "minor", "open_findings",
                                          "findings_new", "repeat_offenders")} == {
        "critical": 1, "major": 0, "minor": 1, "open_findings": 2, "findings_new": 3,
        "repeat_offenders": 1}
    assert city.findings_total["open_findings"] == 3
    assert [row["district"] for row in xuhui.findings] == ["xuhui"]


def test_closedloop_timeline_of_a_unit(sqlite_url: str, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    from closedloop.streams.cli import main
    from closedloop.streams.ledger.engine import open_engine
    from closedloop.streams.ledger.migrate import upgrade

    upgrade(sqlite_url)
    engine = open_engine(sqlite_url)
    with engine.begin() as connection:
        store.put_unit_statuses(connection, [status(VENUE, as_of=50)])
    engine.dispose()
    capsys.readouterr()
    assert main(["timeline", "venue-7", "--ledger", sqlite_url]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == "timeline of venue-7: 6 entries"
    assert [line.split()[1] for line in lines] == [
        "finding", "rectified", "finding", "recheck", "rectified", "recheck"]
    assert lines[0].startswith("2022-09-06T10:00:00+08:00") and "f1: venue_code, major" in lines[0]
    assert lines[3].endswith("finding f1 rechecked: fail")


def test_replay_into_the_ledger_keeps_the_units_findings(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import at as shifted
    from helpers import supervision_edges, to_line

    from closedloop.streams.cli import main

    start = "2022-09-06T09:00:00+08:00"
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"".join(to_line(e) + b"\n" for e in supervision_edges(start)))
    assert main(["replay", str(path), "--until", shifted(start, days=10), "--ledger",
                 sqlite_url, "--alerts", str(tmp_path / "alerts.jsonl"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["timeline", "u-reversed", "--ledger", sqlite_url, "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    # arrived last first: shown in event time, then the alerts they raised
    assert [e["what"] for e in entries][:4] == ["finding", "rectified", "recheck", "alert"]
