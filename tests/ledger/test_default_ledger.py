"""One default ledger for every command: ``$CLOSEDLOOP_DATABASE_URL``, else ``closedloop.db``
in the current directory. A new operator runs ``demo``, then ``alerts list``, ``report
daily`` and ``alerts ack`` without naming a database, as the README walks them through."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import T0, action, at, to_line, travel

from closedloop.streams.cli import main
from closedloop.streams.ledger import URL_ENV

DEMO = ["demo", "--people", "200", "--days", "2"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory, no ledger URL in the environment, a private temp folder."""
    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(URL_ENV, raising=False)
    # a fresh clone's shell: no Kafka configured, so actions go to the ledger
    monkeypatch.delenv("CLOSEDLOOP_KAFKA", raising=False)
    monkeypatch.delenv("CLOSEDLOOP_ACTIONS_VIA", raising=False)
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield work


def _run(capsys: pytest.CaptureFixture[str], argv: list[str], status: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    assert main(argv) == status
    captured = capsys.readouterr()
    return captured.out, captured.err


def _open_alerts(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out, _ = _run(capsys, ["alerts", "list", "--open", "--format", "json"])
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_demo_fills_closedloop_db_in_the_working_directory_and_leaves_no_temp_folder(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # when the demo runs with no options
    out, _ = _run(capsys, DEMO)
    # then its ledger is ./closedloop.db, said so, with the commands that read it as they are
    assert (workdir / "closedloop.db").is_file()
    assert "ledger (SQL): sqlite:///closedloop.db (" in out
    assert "\n  closedloop alerts list --open --sort severity\n" in out
    assert re.search(r"\n  closedloop report daily   # the latest day, \d{4}-\d\d-\d\d\n", out)
    # and nothing was left in the temporary folder
    assert list(Path(tempfile.gettempdir()).iterdir()) == []


def test_a_new_operator_follows_the_readme_on_the_default_ledger(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the demo, run as the README says
    out, _ = _run(capsys, DEMO)
    day = re.findall(r"closedloop report daily   # the latest day, (\S+)", out)[0]
    # when the operator lists open alerts: a table of them, with their level and a count
    table, _ = _run(capsys, ["alerts", "list", "--open"])
    header, *rows, count = table.splitlines()
    assert header.split() == ["due_at", "kind", "subject", "district", "state", "level",
                              "last_action", "last_by", "alert_id"]
    assert rows and all(row.split()[4] == "raised" for row in rows)
    assert count.startswith(f"{len(rows)} alerts (raised {len(rows)})")
    # and prints the latest day's closure table, with its total
    report, _ = _run(capsys, ["report", "daily"])
    lines = report.splitlines()
    assert lines[0].startswith(f"日清日结 {day} · cut-off {day}T22:00:00")
    assert lines[2] == "daily closure (日清日结):"
    assert lines[3].split()[:3] == ["district", "pushed", "located"]
    assert lines[lines.index("", 3) - 1].split()[0] == "total"
    # and acknowledges one alert by its id alone, with no broker: the ledger records it
    chosen = _open_alerts(capsys)[0]
    _, said = _run(capsys, ["alerts", "ack", chosen["alert_id"], "--operator", "op-017",
                            "--note", "on it"])
    assert said == (f"{chosen['alert_id']} acknowledged (subject {chosen['subject']}); "
                    "recorded in the ledger\n")
    listed = {a["alert_id"]: a for a in _open_alerts(capsys)}
    acked = listed[chosen["alert_id"]]
    assert (acked["state"], acked["acknowledged_by"], acked["last_action"], acked["last_by"],
            acked["note"]) == ("acknowledged", "op-017", "ack", "op-017", "on it")


def test_the_environment_variable_moves_the_default_for_every_command(
    workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # given $CLOSEDLOOP_DATABASE_URL naming a ledger elsewhere
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv(URL_ENV, url)
    source = workdir / "in.jsonl"
    source.write_bytes(to_line(travel("traveller-01", T0)) + b"\n")
    # when replay fills the default ledger and alerts list reads it
    _run(capsys, ["replay", str(source), "--until", at(T0, hours=3), "--ledger", "--quiet"])
    listed = _open_alerts(capsys)
    # then both used that ledger, not ./closedloop.db
    assert [a["kind"] for a in listed] == ["unlocated"]
    assert (tmp_path / "elsewhere.db").is_file() and not (workdir / "closedloop.db").exists()


def test_reading_before_any_ledger_exists_says_how_to_fill_the_default(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # when alerts list and report daily run in a directory without a ledger
    for argv in (["alerts", "list", "--open"], ["report", "daily", "--date", "2022-09-07"]):
        _, err = _run(capsys, argv, status=1)
        # then one line names the default and a command that fills it
        assert err.count("\n") == 1 and "Traceback" not in err
        assert "closedloop.db in the current directory" in err
        assert "`closedloop demo`" in err
    assert not (workdir / "closedloop.db").exists()


def test_an_action_on_an_alert_the_ledger_does_not_know_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a ledger filled by replay, and an alert id it does not hold
    source = workdir / "in.jsonl"
    source.write_bytes(to_line(action("al-0000", "traveller-01", T0)) + b"\n")
    _run(capsys, ["replay", str(source), "--ledger", "--quiet"])
    # when that alert is acknowledged, via the ledger or via Kafka
    for via in ("ledger", "kafka"):
        _, err = _run(capsys, ["alerts", "ack", "al-0000", "--operator", "op-017",
                               "--via", via], status=2)
        # then one line says it is not in the ledger, and nothing is recorded or sent
        assert err == "closedloop alerts ack: alert al-0000 is not in the ledger\n"
