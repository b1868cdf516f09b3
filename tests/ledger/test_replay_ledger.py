"""``replay --ledger`` and ``demo`` fill the ledger with what replay writes to its files, and
the operator commands read back the same numbers."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from closedloop.agents.calendar import Calendar
from closedloop.schemas.events import PSEUDONYM_PATTERN
from closedloop.schemas.policy import default_policy
from closedloop.streams.cli import main
from closedloop.streams.cli.report import DAILY_SECTIONS
from closedloop.streams.ledger import models
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.store import REPORT_COUNTS
from closedloop.streams.sim.feed import CityConfig, simulate

UNTIL = "2022-09-09T00:00:00+08:00"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("city") / "city.jsonl"
    config = CityConfig(seed=11, people=600, days=3)
    path.write_bytes(b"".join(line + b"\n" for line in simulate(config)))
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _replay(city: Path, out: Path, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts, reports = out / "alerts.jsonl", out / "reports.jsonl"
    assert main(["replay", str(city), "--until", UNTIL, "--alerts", str(alerts), "--reports",
                 str(reports), "--deadletter", str(out / "dl.jsonl"), "--ledger", url,
                 "--quiet"]) == 0
    return _jsonl(alerts), _jsonl(reports)


def _json_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(argv) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_replay_fills_the_ledger_with_the_same_alerts(
    city: Path, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, _ = _replay(city, tmp_path, sqlite_url)
    assert alerts, "the simulated city raises alerts"
    listed = _json_out(capsys, ["alerts", "list", "--url", sqlite_url, "--format", "json"])
    assert sorted(a["alert_id"] for a in listed) == sorted(a["alert_id"] for a in alerts)
    by_id = {a["alert_id"]: a for a in alerts}
    for row in listed:  # every field as replay wrote it, instants in the same offset
        expected = by_id[row["alert_id"]]
        assert {k: row[k] for k in expected} == expected
        assert row["state"] == "raised"

    district = alerts[0]["district"]
    kind = alerts[0]["kind"]
    some = _json_out(capsys, ["alerts", "list", "--open", "--url", sqlite_url, "--format", "json",
                              "--district", district, "--kind", kind])
    assert len(some) == sum(1 for a in alerts if a["district"] == district and a["kind"] == kind)

    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            people = connection.execute(select(models.PersonState.person_id)).scalars().all()
            letters = connection.execute(select(func.count()).select_from(models.DeadLetter))
            letter_count = letters.scalar_one()
    finally:
        engine.dispose()
    assert people and all(re.match(PSEUDONYM_PATTERN, p) for p in people)
    assert letter_count == len(_jsonl(tmp_path / "dl.jsonl")) > 0

    before = (sorted(a["alert_id"] for a in listed), sorted(people), letter_count)
    _replay(city, tmp_path, sqlite_url)  # the same file again: nothing new
    again = _json_out(capsys, ["alerts", "list", "--url", sqlite_url, "--format", "json"])
    engine = open_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            people = connection.execute(select(models.PersonState.person_id)).scalars().all()
            letter_count = connection.execute(
                select(func.count()).select_from(models.DeadLetter)).scalar_one()
    finally:
        engine.dispose()
    assert (sorted(a["alert_id"] for a in again), sorted(people), letter_count) == before


def test_the_daily_report_command_agrees_with_replay(
    city: Path, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, reports = _replay(city, tmp_path, sqlite_url)
    policy = default_policy()
    cal = Calendar(policy.zone, policy.daily_cutoff)
    days = sorted({r["date"] for r in reports})
    assert len(days) >= 3
    for day in days:
        rows = _json_out(capsys, ["report", "daily", "--date", day, "--url", sqlite_url,
                                  "--format", "json"])
        expected = sorted((r for r in reports if r["date"] == day), key=lambda r: r["district"])
        assert [{k: row[k] for k in ("district", "date", *REPORT_COUNTS)} for row in rows] == (
            expected)
        cutoff = cal.cutoff_at(date.fromisoformat(day))
        raised = Counter(a["district"] for a in alerts
                         if datetime.fromisoformat(a["raised_at"]).timestamp() <= cutoff)
        assert {r["district"]: r["alerts_unresolved"] for r in rows} == {
            r["district"]: raised.get(r["district"], 0) for r in rows}


def test_report_formats(
    city: Path, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, reports = _replay(city, tmp_path, sqlite_url)
    day, district = reports[-1]["date"], reports[-1]["district"]
    capsys.readouterr()
    base = ["report", "daily", "--date", day, "--url", sqlite_url, "--district", district]
    assert main([*base, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    # UTF-8 with a byte order mark, so that Excel reads it as UTF-8
    assert out.startswith("\ufeff")
    lines = out[1:].splitlines()
    assert lines[0].split(",") == ["district", "date", *REPORT_COUNTS, "alerts_unresolved"]
    assert len(lines) == 2 and lines[1].startswith(f"{district},{day},")
    assert main(base) == 0
    table = capsys.readouterr().out.splitlines()
    # the table: the day, then a section a line of titles, a header, the district, the total
    assert table[0].startswith(f"日清日结 {day} · cut-off ")
    shown: list[str] = []
    for title, columns in DAILY_SECTIONS:
        at = table.index(f"{title}:")
        assert table[at + 1].split() == ["district", *columns]
        assert table[at + 2].split()[0] == district
        assert table[at + 3].split()[0] == "total"
        shown += columns
    assert sorted(shown) == sorted([*REPORT_COUNTS, "alerts_unresolved"])
    assert main([*base, "--lang", "zh", "--format", "csv"]) == 0
    assert capsys.readouterr().out[1:].splitlines()[0].split(",")[:3] == ["区", "日期", "推送人数"]
    assert main(["report", "daily", "--date", "1999-01-01", "--url", sqlite_url]) == 1


def test_demo_fills_a_ledger_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["demo", "--people", "300", "--days", "2", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert f"ledger (SQL): {url}" in out
    assert main(["alerts", "list", "--open", "--url", url]) == 0
