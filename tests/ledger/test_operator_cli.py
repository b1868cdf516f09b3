"""The operator's commands on a demo's ledger, as docs/OPERATORS.md walks through them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from closedloop.streams.cli import main


@pytest.fixture(scope="module")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "closedloop.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", io.StringIO())
        assert main(["demo", "--people", "300", "--days", "3", "--ledger",
                     f"sqlite:///{path}"]) == 0
    return path


@pytest.fixture
def url(demo_ledger: Path, tmp_path: Path) -> Iterator[str]:
    copy = tmp_path / "closedloop.db"
    shutil.copy(demo_ledger, copy)
    yield f"sqlite:///{copy}"


def _run(capsys: pytest.CaptureFixture[str], argv: list[str], status: int = 0
         ) -> tuple[str, str]:
    capsys.readouterr()
    assert main(argv) == status
    captured = capsys.readouterr()
    return captured.out, captured.err


def _alerts(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> list[dict[str, Any]]:
    out, _ = _run(capsys, ["alerts", "list", *argv, "--format", "json", "--ledger", url])
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_unknown_filter_values_are_exit_2_with_the_known_ones_closest_first(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = _run(capsys, ["alerts", "list", "--district", "Pudong", "--ledger", url], 2)
    assert err.startswith("closedloop alerts list: no district 'Pudong' in the ledger; "
                          "known: pudong, ")
    _, err = _run(capsys, ["alerts", "list", "--kind", "positve", "--ledger", url], 2)
    assert "known: positive, pool_positive" in err and err.count("\n") == 1
    _, err = _run(capsys, ["alerts", "list", "--round", "round-citywid", "--ledger", url], 2)
    assert "known: round-citywide" in err
    _, err = _run(capsys, ["report", "daily", "--district", "Xuhui", "--ledger", url], 2)
    assert "known: xuhui, " in err


def test_severity_sorting_puts_positives_first_and_the_table_counts(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _alerts(capsys, url, "--open", "--sort", "severity")
    kinds = [row["kind"] for row in rows]
    assert kinds[0] == "positive" and kinds.index("positive") < kinds.index("round_missed")
    out, _ = _run(capsys, ["alerts", "list", "--open", "--limit", "3", "--ledger", url])
    *_, count = out.splitlines()
    assert count.startswith(f"3 of {len(rows)} alerts (")


def test_the_pending_catch_up_list_leaves_out_the_caught_up(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    every = _alerts(capsys, url, "--kind", "round_missed")
    caught = [a for a in every if a["state"] == "caught_up"]
    base = ["alerts", "list", "--kind", "round_missed", "--round", "round-citywide"]
    out, _ = _run(capsys, [*base, "--pending", "--format", "json", "--ledger", url])
    pending = json.loads(out)
    # most persons missed were sampled after the close: only the others are left to do
    assert caught and len(pending) == len(every) - len(caught)
    assert all(row["state"] in ("raised", "acknowledged") for row in pending)
    # and as a workbook, one sheet per grid, headers in Chinese
    book_path = tmp_path / "catchup.xlsx"
    _run(capsys, [*base, "--pending", "--format", "xlsx", "--lang", "zh", "-o", str(book_path),
                  "--ledger", url])
    book = load_workbook(book_path)
    grids = {(row["district"], row["grid"]) for row in pending}
    assert len(book.sheetnames) == len(grids)
    sheet = book[book.sheetnames[0]]
    assert [cell.value for cell in sheet[1]][:3] == ["区", "网格", "人员"]
    assert sum(ws.max_row - 1 for ws in book.worksheets) == len(pending)


def test_report_daily_of_a_day_the_ledger_lacks_names_the_days_it_has(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _run(capsys, ["report", "daily", "--list", "--format", "json", "--ledger", url])
    days = [row["date"] for row in json.loads(out)]  # newest first
    _, err = _run(capsys, ["report", "daily", "--date", "2030-01-01", "--ledger", url], 1)
    assert err == ("closedloop report daily: no daily report for 2030-01-01 in the ledger; "
                   f"it has, closest first: {', '.join(days[:3])}\n")


@pytest.mark.parametrize("fmt", ["xlsx", "csv", "json"])
def test_limit_keeps_the_first_persons_of_the_catch_up_list_in_every_format(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    base = ["alerts", "list", "--kind", "round_missed", "--round", "round-citywide",
            "--ledger", url]
    out, _ = _run(capsys, [*base, "--format", "json"])
    every = json.loads(out)
    assert len(every) > 3
    path = tmp_path / f"catchup.{fmt}"
    _, err = _run(capsys, [*base, "--limit", "3", "--format", fmt, "-o", str(path)])
    assert err.startswith(f"3 of {len(every)} persons")
    if fmt == "xlsx":
        book = load_workbook(path)
        kept = [row[-1] for sheet in book.worksheets
                for row in sheet.iter_rows(min_row=2, values_only=True)]
    elif fmt == "csv":
        kept = [line.rsplit(",", 1)[1] for line in path.read_text("utf-8-sig").splitlines()[1:]]
    else:
        kept = [row["alert_id"] for row in json.loads(path.read_text())]
    assert kept == [row["alert_id"] for row in every[:3]]


def test_report_daily_defaults_to_the_latest_day_and_lists_the_days(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _run(capsys, ["report", "daily", "--list", "--format", "json", "--ledger", url])
    days = json.loads(out)
    latest = days[0]["date"]
    assert days == sorted(days, key=lambda d: d["date"], reverse=True)
    out, _ = _run(capsys, ["report", "daily", "--ledger", url])
    assert out.splitlines()[0].startswith(f"日清日结 {latest}")
    assert out.splitlines()[-1].split()[0] == "total"
    out, _ = _run(capsys, ["report", "round", "--list", "--ledger", url])
    assert out.splitlines()[1].split()[:2] == ["round-citywide", "final"]


def test_actions_acknowledge_is_one_line_listing_the_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, err = _run(capsys, ["alerts", "acknowledge", "al-1", "--operator", "op-1"], 2)
    assert err == ("closedloop alerts: 'acknowledge' is not an action: use ack, resolve, "
                   "assign (ack: acknowledge); or list, tail\n")


def test_a_closed_alert_and_another_subject_are_refused_in_one_line(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    positive = _alerts(capsys, url, "--kind", "positive")[0]
    ident, subject = positive["alert_id"], positive["subject"]
    _, err = _run(capsys, ["alerts", "ack", ident, "--operator", "op-1", "--subject",
                           "p:someoneelse", "--via", "ledger", "--ledger", url], 2)
    assert err == (f"closedloop alerts ack: alert {ident} is about {subject}, not "
                   "p:someoneelse: its subject is not the alert's\n")
    _run(capsys, ["alerts", "resolve", ident, "--operator", "op-1", "--via", "ledger",
                  "--ledger", url])
    _, err = _run(capsys, ["alerts", "assign", ident, "--operator", "op-1", "--assignee",
                           "op-2", "--via", "ledger", "--ledger", url], 2)
    assert err.startswith(f"closedloop alerts assign: alert {ident} is resolved since ")
    assert err.endswith(": a closed alert takes no action\n")


def test_via_kafka_without_a_broker_is_one_line_naming_via_ledger(url: str) -> None:
    # given no broker where CLOSEDLOOP_KAFKA points (port 1 refuses connections)
    env = {**os.environ, "CLOSEDLOOP_KAFKA": "127.0.0.1:1"}
    env.pop("CLOSEDLOOP_ACTIONS_VIA", None)
    listed = subprocess.run([sys.executable, "-m", "closedloop.streams.cli", "alerts", "list",
                             "--open", "--format", "json", "--ledger", url],
                            env=env, capture_output=True, text=True, timeout=60, check=True)
    ident = json.loads(listed.stdout)[0]["alert_id"]
    # when an alert is acknowledged there: the default is kafka, since CLOSEDLOOP_KAFKA is set
    run = subprocess.run([sys.executable, "-m", "closedloop.streams.cli", "alerts", "ack",
                          ident, "--operator", "op-1", "--ledger", url],
                         env=env, capture_output=True, text=True, timeout=60)
    # then one line says so and names --via ledger
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == ("closedloop alerts ack: Kafka at 127.0.0.1:1 is not reachable; to "
                          "record the action without Kafka, use --via ledger (or set "
                          "CLOSEDLOOP_ACTIONS_VIA=ledger)\n")


def test_a_timeline_shows_a_persons_alerts_actions_and_escalations_in_order(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    positive = _alerts(capsys, url, "--kind", "positive")[0]
    _run(capsys, ["alerts", "ack", positive["alert_id"], "--operator", "op-1", "--via",
                  "ledger", "--ledger", url])
    out, _ = _run(capsys, ["timeline", positive["subject"], "--format", "json",
                           "--ledger", url])
    entries = json.loads(out)
    whats = [e["what"] for e in entries]
    assert whats[0] == "alert" and "action" in whats and "escalation" in whats
    acted = next(e for e in entries if e["what"] == "action")
    assert acted["text"].startswith("acknowledged by op-1 (via ledger")
    _, err = _run(capsys, ["timeline", "p:nobody", "--ledger", url], 1)
    assert err == "closedloop timeline: nothing about 'p:nobody' in the ledger\n"
