"""Testing rounds in the ledger: ``replay --ledger`` stores every round report as replay writes
it, ``report round`` shows any stage in any format, and ``alerts list --round`` is the
catch-up list (查漏补测) with district and grid.

The round of the exact tests, r1: opens 09:00, closes 12:00 local on 2022-09-06 in district-a
and district-b, catch-up window 24 h. On the roster: aaaa (grid-1), bbbb (grid-2), cccc (no
grid) in district-a, dddd (grid-9) in district-b. aaaa is sampled in the round, bbbb is caught
up two hours after the close, cccc and dddd are never sampled, and zzzz, not on the roster, is
sampled in district-a during the round. r3 (district-b, 13:00-14:00) misses dddd again; r2
(district-z, nobody there) closes with no rows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import T0, at, population, round_, sampling, to_line
from ledger_samples import Partition
from sqlalchemy import Engine, select

from closedloop.schemas.outputs import RoundReport, RoundRow
from closedloop.streams.cli import main
from closedloop.streams.ledger import models, store
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.sink import write_batch
from closedloop.streams.sim.feed import CityConfig, simulate

OPENS, CLOSES = T0, at(T0, hours=3)  # 09:00, 12:00
FINAL = at(CLOSES, days=1)
BEFORE = at(T0, days=-1)
CALLED = at(T0, hours=-1)
END = at(FINAL, days=1)
RECEIVED = at(END, days=1)

EVENTS = [
    population("person-aaaa", BEFORE, grid="grid-1"),
    population("person-bbbb", BEFORE, grid="grid-2"),
    population("person-cccc", BEFORE),
    population("person-dddd", BEFORE, district="district-b", grid="grid-9"),
    round_("r1", CALLED, OPENS, CLOSES, ["district-a", "district-b"]),
    round_("r2", CALLED, OPENS, CLOSES, ["district-z"]),
    round_("r3", CALLED, at(T0, hours=4), at(T0, hours=5), ["district-b"]),
    sampling("person-aaaa", "tube-a1", at(T0, minutes=30)),
    sampling("person-zzzz", "tube-z1", at(T0, minutes=90)),
    sampling("person-bbbb", "tube-b1", at(CLOSES, hours=2)),
]

COLUMNS = ["district", "in_scope", "sampled", "missed", "caught_up", "not_on_roster",
           "catchup_median_hours"]


def _replay(lines: list[bytes], tmp: Path, url: str, until: str = END) -> list[dict[str, Any]]:
    """Replay into the ledger at ``url``; returns replay's own ``--round-reports``."""
    city, out = tmp / "events.jsonl", tmp / "round-reports.jsonl"
    city.write_bytes(b"".join(line + b"\n" for line in lines))
    assert main(["replay", str(city), "--until", until, "--received-at", RECEIVED,
                 "--alerts", str(tmp / "alerts.jsonl"), "--round-reports", str(out),
                 "--deadletter", str(tmp / "dl.jsonl"), "--ledger", url, "--quiet"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _stored(url: str) -> list[dict[str, Any]]:
    """The round_report table as reports: rows grouped by (round_id, stage, as_of)."""
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(models.RoundReport.__table__)).mappings().all()
    finally:
        engine.dispose()
    reports: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["round_id"], row["stage"], row["as_of"].astimezone(
            _zone()).isoformat())
        body = {c: row[c] for c in COLUMNS}
        reports.setdefault(key, [])
        if row["district"] != "":  # the marker row of a report without districts
            reports[key].append(body)
    return [{"round_id": r, "stage": s, "as_of": t,
             "rows": sorted(rows_, key=lambda x: x["district"])}
            for (r, s, t), rows_ in reports.items()]


def _zone() -> Any:
    from closedloop.schemas.policy import default_policy

    return default_policy().zone


def _key(report: dict[str, Any]) -> tuple[str, str, str]:
    return report["round_id"], report["as_of"], report["stage"]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def exact(ledger_url: str, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The ledger after replaying EVENTS, and replay's round reports."""
    return ledger_url, _replay([to_line(e) for e in EVENTS], tmp_path, ledger_url)


def test_the_ledger_holds_every_round_report_replay_writes(
    exact: tuple[str, list[dict[str, Any]]],
) -> None:
    url, reports = exact
    assert {r["stage"] for r in reports} == {"progress", "close", "final"}
    assert any(not r["rows"] for r in reports), "r2 closes with no district"
    assert sorted(_stored(url), key=_key) == sorted(reports, key=_key)


def test_report_round_shows_each_stage_in_each_format(
    exact: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = exact
    base = ["report", "round", "r1", "--url", url]
    # the default: the latest stage there is, final
    code, out, _ = _run(capsys, base)
    assert code == 0
    assert out.splitlines() == [
        f"round r1 · final · as of {FINAL}",
        "district    in_scope  sampled  missed  caught_up  not_on_roster  catchup_median_hours",
        "district-a  3         1        2       1          1              2.0",
        "district-b  1         0        1       0          0              -",
        "total       4         1        3       1          1              -",
    ]
    code, out, _ = _run(capsys, [*base, "--stage", "close", "--format", "csv"])
    assert code == 0 and out.startswith("\ufeff")  # UTF-8 with a BOM: Excel reads it so
    assert out[1:].splitlines() == [
        "round_id,stage,as_of,district,in_scope,sampled,missed,caught_up,not_on_roster,"
        "catchup_median_hours",
        f"r1,close,{CLOSES},district-a,3,1,2,0,1,",
        f"r1,close,{CLOSES},district-b,1,0,1,0,0,",
    ]
    code, out, _ = _run(capsys, [*base, "--stage", "final", "--format", "json"])
    assert code == 0
    assert json.loads(out) == [
        {"round_id": "r1", "stage": "final", "as_of": FINAL, "district": "district-a",
         "in_scope": 3, "sampled": 1, "missed": 2, "caught_up": 1, "not_on_roster": 1,
         "catchup_median_hours": 2.0},
        {"round_id": "r1", "stage": "final", "as_of": FINAL, "district": "district-b",
         "in_scope": 1, "sampled": 0, "missed": 1, "caught_up": 0, "not_on_roster": 0,
         "catchup_median_hours": None},
    ]
    # progress: the latest (11:00) unless --as-of picks one (10:00)
    code, out, _ = _run(capsys, [*base, "--stage", "progress", "--format", "csv"])
    assert code == 0
    assert out.splitlines()[1:] == [
        f"r1,progress,{at(T0, hours=2)},district-a,3,1,2,0,1,",
        f"r1,progress,{at(T0, hours=2)},district-b,1,0,1,0,0,",
    ]
    code, out, _ = _run(capsys, [*base, "--stage", "progress", "--as-of", at(T0, hours=1),
                                 "--format", "csv"])
    assert code == 0
    assert out.splitlines()[1:] == [
        f"r1,progress,{at(T0, hours=1)},district-a,3,1,2,0,0,",
        f"r1,progress,{at(T0, hours=1)},district-b,1,0,1,0,0,",
    ]


def test_report_round_explains_what_it_cannot_show(
    exact: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = exact
    code, out, err = _run(capsys, ["report", "round", "r9", "--url", url])
    assert (code, out) == (2, "")
    assert err == "closedloop report round: no round 'r9' in the ledger; known: r1, r2, r3\n"
    code, _, err = _run(capsys, ["report", "round", "r1", "--stage", "progress", "--as-of",
                                 at(T0, minutes=90), "--url", url])
    assert code == 1
    assert err == (f"closedloop report round: round 'r1' has no progress as of "
                   f"{at(T0, minutes=90)} in the ledger; it has: progress ×2 (latest "
                   f"{at(T0, hours=2)}), close {CLOSES}, final {FINAL}\n")
    for bad, says in ((["r 1"], "'r 1' is not a round_id"),
                      (["r1", "--as-of", "2022-09-06"], "has no UTC offset")):
        code, out, err = _run(capsys, ["report", "round", *bad, "--url", url])
        assert (code, out) == (2, "")
        assert err.startswith("closedloop report round: ") and says in err
        assert err.count("\n") == 1
    # a round whose report has no district: found, and said so
    code, out, err = _run(capsys, ["report", "round", "r2", "--url", url, "--format", "json"])
    assert (code, json.loads(out)) == (0, [])
    assert err == ("closedloop report round: round 'r2' final report: nobody in scope and "
                   "nobody sampled off the roster\n")
    # and as csv it has the header of a round with rows, for a script reading both
    code, out, _ = _run(capsys, ["report", "round", "r2", "--url", url, "--format", "csv"])
    assert (code, out) == (0, "\ufeffround_id,stage,as_of,district,in_scope,sampled,missed,"
                              "caught_up,not_on_roster,catchup_median_hours\r\n")


def _catch_up(capsys: pytest.CaptureFixture[str], url: str, round_id: str
              ) -> list[dict[str, str]]:
    code, out, _ = _run(capsys, ["alerts", "list", "--kind", "round_missed", "--round",
                                 round_id, "--format", "csv", "--url", url])
    assert code == 0 and out.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(out[1:])))


def test_the_catch_up_list_is_the_missed_persons_with_district_and_grid(
    exact: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = exact
    rows = _catch_up(capsys, url, "r1")
    # person-bbbb was sampled 2 h after the close: caught up, closed by the system
    assert [(r["person"], r["district"], r["grid"], r["due_at"], r["state"],
             r["caught_up_at"], r["sampled_after_close"]) for r in rows] == [
        ("person-bbbb", "district-a", "grid-2", CLOSES, "caught_up", at(CLOSES, hours=2),
         at(CLOSES, hours=2)),
        ("person-cccc", "district-a", "", CLOSES, "raised", "", ""),
        ("person-dddd", "district-b", "grid-9", CLOSES, "raised", "", ""),
    ]
    assert [(r["person"], r["grid"], r["due_at"]) for r in _catch_up(capsys, url, "r3")] == [
        ("person-dddd", "grid-9", at(T0, hours=5))]
    assert _catch_up(capsys, url, "r2") == []
    code, out, _ = _run(capsys, ["alerts", "list", "--round", "r1", "--pending", "--url", url])
    assert code == 0
    header, *rows_shown, count = out.splitlines()
    assert header.split() == ["district", "grid", "person", "due_at", "state", "caught_up_at",
                              "sampled_after_close", "assignee", "alert_id"]
    assert [line.split()[:3] for line in rows_shown] == [
        ["district-a", "-", "person-cccc"], ["district-b", "grid-9", "person-dddd"]]
    assert count == "2 persons"


def test_a_simulated_rounds_reports_in_the_ledger_equal_replays(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = list(simulate(CityConfig(seed=3, people=400, days=3, round=True)))
    reports = _replay(lines, tmp_path, sqlite_url, until="2022-09-09T00:00:00+08:00")
    assert [r["stage"] for r in reports].count("final") == 1
    assert sorted(_stored(sqlite_url), key=_key) == sorted(reports, key=_key)
    final = next(r for r in reports if r["stage"] == "final")
    code, out, _ = _run(capsys, ["report", "round", final["round_id"], "--url", sqlite_url,
                                 "--format", "json"])
    assert code == 0
    assert [{c: row[c] for c in COLUMNS} for row in json.loads(out)] == final["rows"]


def _round_report(stage: str, as_of: str, *districts: tuple[str, int]) -> RoundReport:
    return RoundReport(round_id="r1", stage=stage, as_of=as_of, rows=[  # type: ignore[arg-type]
        RoundRow(district=d, in_scope=n, sampled=n - 1, missed=1, caught_up=0, not_on_roster=0,
                 catchup_median_hours=None) for d, n in districts])


def _table(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(select(
            models.RoundReport.stage, models.RoundReport.district, models.RoundReport.in_scope
        ).order_by(models.RoundReport.as_of, models.RoundReport.district)).all()
    return [tuple(r) for r in rows]


def test_the_sink_stores_round_reports_and_a_redelivered_one_replaces_its_rows(
    ledger: Engine,
) -> None:
    topic = Partition("round-report")
    first = _round_report("progress", OPENS, ("district-a", 5), ("district-b", 3))
    with ledger.begin() as connection:
        counts = write_batch(connection, [topic.record(first, "r1"),
                                          topic.record(_round_report("close", CLOSES), "r1")])
    assert counts["round_reports"] == 2
    assert _table(ledger) == [("progress", "district-a", 5), ("progress", "district-b", 3),
                              ("close", "", 0)]  # the marker of a report without rows
    again = _round_report("progress", OPENS, ("district-a", 6))  # the same report, re-sent
    with ledger.begin() as connection:
        assert write_batch(connection, [topic.record(again, "r1")])["round_reports"] == 1
        assert store.upsert_round_reports(connection, [again]) == 1  # by itself: idempotent
    assert _table(ledger) == [("progress", "district-a", 6), ("close", "", 0)]


def test_the_demo_prints_its_round_and_the_ledger_has_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    code, out, _ = _run(capsys, ["demo", "--people", "300", "--days", "3", "--ledger", url])
    assert code == 0
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("testing round "))
    assert lines[title] == ("testing round round-citywide (区域核酸): missed at the close, "
                            "caught up by the final report, 2022-09-08T18:00:00+08:00:")
    assert lines[title + 1].split() == COLUMNS
    shown = [line.split() for line in lines[title + 2:title + 9]]
    assert [row[0] for row in shown] == ["huangpu", "jingan", "minhang", "pudong", "xuhui",
                                         "yangpu", "total"]
    code, report, _ = _run(capsys, ["report", "round", "round-citywide", "--url", url,
                                    "--format", "json"])
    assert code == 0
    rows = json.loads(report)
    assert [r["stage"] for r in rows] == ["final"] * 6
    assert [[r["district"], *(str(r[c]) for c in COLUMNS[1:6])] for r in rows] == [
        row[:6] for row in shown[:6]]
    assert shown[6][1:] == [str(sum(r[c] for r in rows)) for c in COLUMNS[1:6]]
    assert sum(r["caught_up"] for r in rows) > 0
    assert f"closedloop report round round-citywide --ledger {url}" in out
