"""What ``replay`` and ``report daily`` tell an operator: where outputs went, and for a wrong
option one line (no traceback) that says what to write instead."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import T0, at, epoch, to_line, travel

from closedloop.schemas.instants import parse_instant
from closedloop.streams.cli import build_parser, main

# a push nobody locates: unlocated at 11:00, escalated at 13:00 and 15:00
UNTIL = at(T0, hours=8)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(to_line(travel("traveller-01", T0)) + b"\n")
    return path


def _err(capsys: pytest.CaptureFixture[str], argv: list[str], status: int) -> str:
    capsys.readouterr()
    assert main(argv) == status
    return capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize(("given", "local"), [
    ("2022-09-09", "2022-09-09T00:00:00+08:00"),
    ("2022-09-09T10:30", "2022-09-09T10:30:00+08:00"),
])
def test_until_without_offset_suggests_an_instant_that_is_accepted(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, local: str
) -> None:
    # when --until has no offset
    base = ["replay", str(source), "--alerts", str(tmp_path / "a.jsonl"), "--quiet"]
    line = _one_line(_err(capsys, [*base, "--until", given], 2))
    # then the one line suggests the same local instant with the policy's offset...
    [suggested] = re.findall(r"write e\.g\. (\S+)\)", line)
    assert suggested == local
    # ...which replay then accepts
    assert parse_instant(suggested) == epoch(local)
    assert main([*base, "--until", suggested]) == 0


def test_until_that_is_no_timestamp_shows_the_format(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line(_err(capsys, ["replay", str(source), "--until", "tomorrow"], 2))
    assert "2022-09-09T00:00:00+08:00" in line


def test_replay_help_says_how_to_write_until_and_what_a_bare_ledger_means(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "e.g. 2022-09-09T00:00:00+08:00" in text and "a date alone is refused" in text
    assert "without URL the default ($CLOSEDLOOP_DATABASE_URL, else sqlite:///closedloop.db" in (
        text)
    assert "An embedded SQLite file is created and upgraded on first use" in text


def test_escalations_not_kept_say_how_to_keep_them(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _err(capsys, ["replay", str(source), "--until", UNTIL,
                        "--alerts", str(tmp_path / "a.jsonl")], 0)
    assert "escalations 2: alerts nobody acknowledged, resolved or satisfied in time" in err
    assert "(escalations were not kept: pass --escalations FILE to keep them)" in err


def test_escalations_kept_say_where_they_went(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "e.jsonl"
    err = _err(capsys, ["replay", str(source), "--until", UNTIL, "--alerts",
                        str(tmp_path / "a.jsonl"), "--escalations", str(out),
                        "--ledger", f"sqlite:///{tmp_path / 'l.db'}"], 0)
    assert f"escalations 2 (written to {out}, levels recorded in the ledger): " in err
    assert "not kept" not in err


def test_the_demo_says_its_own_option_keeps_rejected_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()  # 600 people (seed 7): enough noise for rejected lines
    assert main(["demo", "--people", "600", "--days", "2",
                 "--ledger", f"sqlite:///{tmp_path / 'l.db'}"]) == 0
    out = capsys.readouterr().out
    assert "(rejected lines were not kept: pass --out DIR to keep them)" in out
    assert "--deadletter" not in out


def test_a_bare_ledger_before_file_is_refused_with_the_fix(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # when `--ledger FILE` leaves replay without its FILE
    with pytest.raises(SystemExit) as stopped:
        main(["replay", "--ledger", str(source)])
    # then argparse's error says that is no URL and where to put a bare --ledger
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "is not a database URL" in err and "put --ledger after FILE" in err


@pytest.mark.parametrize("day", ["2022-13-45", "yesterday", "2022-02-30"])
def test_report_daily_with_an_impossible_date_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], day: str
) -> None:
    line = _one_line(_err(capsys, ["report", "daily", "--date", day], 2))
    assert line == (f"closedloop report daily: --date {day!r} is not a calendar day: write "
                    "YYYY-MM-DD, e.g. 2022-09-08")
    assert "fromisoformat" not in line


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[list[str]]:
    """Every command and sub-command's argv prefix, from the parser itself."""
    yield path
    for action in parser._actions:  # argparse keeps sub-parsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, [*path, name])


def test_every_command_of_the_ledger_takes_ledger_and_url_alike() -> None:
    # README: "--url URL is the same as --ledger URL everywhere"
    def takes(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[str, bool]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from takes(child, [*path, name])
            elif "--ledger" in action.option_strings:
                yield " ".join(path), "--url" in action.option_strings

    found = dict(takes(build_parser(), []))
    assert {"demo", "replay", "alerts list", "alerts ack", "report daily", "timeline", "sink",
            "db upgrade"} <= set(found)
    assert [command for command, alias in found.items() if not alias] == []


def test_every_option_and_argument_says_what_it_is() -> None:
    def bare(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[str]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from bare(child, [*path, name])
            elif action.help is None:
                yield " ".join([*path, *action.option_strings] or [*path, action.dest])

    assert list(bare(build_parser(), [])) == []


def test_every_help_text_is_printed_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # a description is not %-formatted (only argument helps are), so "%%" would show as is
    commands = list(_commands(build_parser(), []))
    assert ["bench", "round"] in commands and ["report", "round"] in commands
    for argv in commands:
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--help"])
        assert exit_.value.code == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: ") and "%%" not in out, (argv, out)
        # written for operators: no markup of the code's docstrings, no pointer into code
        for markup in ("``", ":mod:", ":func:", ":class:", ":meth:", "closedloop.streams."):
            assert markup not in out, (argv, markup)
        # an example is one command as it is typed: a line continued with a backslash keeps
        # its line break (a docstring would join it to the next, spaces and all)
        for line in out.splitlines():
            if line.startswith("  closedloop "):
                assert not re.search(r"\S {3,}[^#\s]", line), (argv, line)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"closedloop {version('closedloop')}\n"


def test_plain_make_lists_the_targets_and_runs_nothing() -> None:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(["make", "--no-print-directory", "-C", str(root)],
                         capture_output=True, text=True, timeout=60, check=True)
    lines = run.stdout.splitlines()
    assert lines[0].split()[:2] == ["make", "help"]
    assert {line.split()[1] for line in lines if line.split()[:1] == ["make"]} >= {
        "demo", "test", "lint", "install", "services"}
    assert "pytest" not in run.stdout.replace("pytest against", "")


@pytest.mark.parametrize("argv", [
    ["bench", "deadlines", "--sizes", "abc"], ["bench", "deadlines", "--sizes", "0,10"],
    ["bench", "deadlines", "--sizes", "1,10"], ["bench", "deadlines", "--operations", "0"],
    ["bench", "replay", "--people", "0"], ["bench", "replay", "--repeat", "0"],
    ["bench", "round", "--persons", "0"], ["demo", "--people", "0"], ["demo", "--days", "-1"],
])
def test_a_bad_number_is_one_usage_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # the values a new user tried: each used to end in a traceback from deep inside the run
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {argv[-2]}: " in err and "Traceback" not in err


def test_demo_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "afile"
    taken.write_text("")
    assert main(["demo", "--out", str(taken)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_alerts_list_refuses_a_kind_neither_the_contract_nor_the_ledger_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a typo (round-missed) used to list nothing: exit 2 with the kinds, closest first
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["db", "upgrade", "--url", url]) == 0
    capsys.readouterr()
    assert main(["alerts", "list", "--kind", "round-missed", "--url", url]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("closedloop alerts list: no kind 'round-missed' in the ledger; "
                           "known: round_missed, ")


def test_alerts_list_says_a_round_has_round_missed_alerts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it used to say "no round_missed alert of round r1" for --kind positive --round r1
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["alerts", "list", "--kind", "positive", "--round", "r1", "--url", url]) == 2
    assert "round_missed alerts, not positive" in capsys.readouterr().err
