"""What the command line echoes of its arguments never holds a raw identifier (CONTRACT.md §2,
v1.2: "arguments echoed on stderr"): one redacted standard error for every command."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from closedloop.schemas.identifiers import contains_raw
from closedloop.streams.cli import main
from closedloop.streams.cli.stderr import RedactedStream

MOBILE: Final = "13912345678"
SPELLINGS: Final = (MOBILE, "１３９１２３４５６７８", "139 1234 5678", "٨٦١٣٩١٢٣٤٥٦٧٨")


def _city(tmp_path: Path) -> str:
    path = tmp_path / "city.jsonl"
    path.write_text("")
    return str(path)


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("argv", [
    ["replay", "nosuch_{raw}.jsonl"],
    ["replay", "{city}", "--until", "{raw}"],
    ["replay", "{city}", "--received-at", "{raw}"],
    ["replay", "{city}", "--alerts", "/nonexist/{raw}.jsonl"],
    ["simulate", "--start", "{raw}"],
    ["policy", "check", "p_{raw}.toml"],
    ["replay", "{city}", "--policy", "{raw}.toml"],
    ["report", "round", "r {raw}"],
    ["alerts", "list", "--kind", "k{raw}", "--round", "r1", "--url", "sqlite:///{tmp}/none.db"],
    ["bench", "replay", "--people", "{raw}x"],
    ["{raw}"],
], ids=["replay-file", "until", "received-at", "alerts-out", "simulate-start", "policy-check",
        "replay-policy", "report-round", "alerts-kind", "bench-number", "command"])
def test_an_identifier_given_as_an_argument_is_never_echoed(
    argv: list[str], spelling: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    filled = [a.format(raw=spelling, city=_city(tmp_path), tmp=tmp_path) for a in argv]
    try:
        code = main(filled)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code in (1, 2), err
    assert not contains_raw(err), err
    assert "[redacted]" in err  # the refusal quotes what it was given, redacted


def test_a_token_written_in_pieces_is_still_redacted() -> None:
    sink = io.StringIO()
    stream = RedactedStream(sink)  # type: ignore[arg-type]
    for piece in ("cannot read ", MOBILE[:4], MOBILE[4:], ".jsonl", "\n", "progress 1", "\r"):
        stream.write(piece)
    stream.write(f"last {MOBILE}")
    assert sink.getvalue() == "cannot read [redacted].jsonl\nprogress 1\r"
    stream.flush()
    assert sink.getvalue().endswith("last [redacted]")


def test_the_real_standard_error_is_redacted_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "replay", f"x_{MOBILE}.jsonl",
         "--until", f"+86{MOBILE}"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 2
    assert "[redacted]" in done.stderr and not contains_raw(done.stderr), done.stderr


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json", "table"])
def test_an_output_file_that_cannot_be_written_is_one_redacted_line(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from closedloop.streams.ledger.embedded import ReplayLedger

    url = f"sqlite:///{tmp_path}/ledger.db"
    ReplayLedger.open(url).close()  # an empty ledger: the listing itself works
    code = main(["alerts", "list", "--ledger", url, "--format", fmt,
                 "-o", f"{tmp_path}/no-such-folder/{MOBILE}.{fmt}"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err == (f"closedloop alerts list: {tmp_path}/no-such-folder/[redacted].{fmt}: "
                   "No such file or directory\n")


@pytest.mark.parametrize("argv", [["policy", "show"], ["alerts", "list", "--format", "xlsx",
                                                       "-o", "/dev/full"],
                                  ["replay", "-", "--alerts", "/dev/full", "--received-at",
                                   "2022-09-10T00:00:00+08:00", "--until",
                                   "2022-09-08T00:00:00+08:00"]],
                         ids=["standard-output", "xlsx", "replay-alerts"])
def test_a_full_disk_is_one_line_and_exit_1(argv: list[str], tmp_path: Path) -> None:
    from closedloop.streams.ledger.embedded import ReplayLedger

    url = f"sqlite:///{tmp_path}/ledger.db"
    ReplayLedger.open(url).close()
    swab = ('{"topic":"sampling","value":{"event_id":"s1","occurred_at":'
            '"2022-09-06T10:00:00+08:00","person_id":"p:00000001","tube_id":"tb-1",'
            '"site_id":"site-1","district":"xuhui","pool_size":1}}\n')  # raises two alerts
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "closedloop.streams.cli", *argv, *(
                ["--ledger", url] if argv[0] == "alerts" else [])], input=swab,
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.endswith(": No space left on device\n"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "read" not in done.stderr  # nothing failed to read


@pytest.mark.parametrize("argv", [
    ["policy", "check", "{tmp}/p_{raw}.toml"],
    ["db", "current", "--ledger", "sqlite:///{tmp}/{raw}.db"],
    ["demo", "--people", "60", "--days", "2", "--out", "{tmp}/{raw}",
     "--ledger", "sqlite:///{tmp}/l_{raw}.db"],
], ids=["policy-check", "db-current", "demo"])
def test_an_identifier_given_as_an_argument_is_not_echoed_on_standard_output(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    main(["policy", "show"])
    (tmp_path / f"p_{MOBILE}.toml").write_text(capsys.readouterr().out)
    code = main([a.format(raw=MOBILE, tmp=tmp_path) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[redacted]" in out and not contains_raw(out), out
    assert not contains_raw(err), err
