"""``closedloop replay FILE|- [--until T] [--alerts A] [--deadletter D] [--reports R]``
(CONTRACT.md §6): in-process through ``cli.main`` and as the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import T0, at, followup, lab, run_bytes, sampling, to_line, travel

from closedloop.streams.cli import main

CLOSEDLOOP = str(Path(sys.executable).with_name("closedloop"))
UNTIL = at(T0, days=1)  # 2022-09-07T09:00:00+08:00


def city_lines() -> list[bytes]:
    """Three good events, then two bad lines (3 and 5), then more good events."""
    return [
        to_line(travel("traveller-1", T0, risk="inside_province")),
        to_line(sampling("resident-1", "tube-1", T0)),
        b"this is not json",
        to_line(lab("tube-1", at(T0, hours=2), "positive")),
        to_line(travel("traveller-2", "2022-09-06T10:00:00")),  # naive timestamp
        to_line(followup("traveller-1", at(T0, hours=3), "located")),
    ]


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "city.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestReplayCommand:
    def test_writes_alerts_reports_and_dead_letters_and_exits_0(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # given a file with two bad lines among good ones
        source = _write(tmp_path, city_lines())
        alerts, letters, reports = (tmp_path / n for n in ("a.jsonl", "d.jsonl", "r.jsonl"))
        # when replayed to 09:00 the next day
        status = main([
            "replay", str(source), "--until", UNTIL, "--alerts", str(alerts),
            "--deadletter", str(letters), "--reports", str(reports),
        ])
        # then the run succeeded, every output has its lines
        assert status == 0
        assert [(a["kind"], a["subject"]) for a in _jsonl(alerts)] == [
            ("positive", "resident-1"),
            ("unlocated", "traveller-1"),
            ("test_missed", "traveller-1"),
        ]
        assert [(d["line"], d["reason"]) for d in _jsonl(letters)] == [
            (3, "not_json"), (5, "naive_timestamp"),
        ]
        assert all(d["message"] and d["original"] for d in _jsonl(letters))
        assert [(r["district"], r["date"]) for r in _jsonl(reports)] == [
            ("district-a", "2022-09-06")
        ]
        # and nothing but the summary went to the terminal
        out, err = capsys.readouterr()
        assert out == "" and "rejected" in err

    def test_the_command_writes_what_the_library_writes(self, tmp_path: Path) -> None:
        # given the file with bad lines
        source = _write(tmp_path, city_lines())
        alerts = tmp_path / "a.jsonl"
        # when the command replays it to 09:00 the next day
        status = main(["replay", str(source), "--until", UNTIL, "--alerts", str(alerts),
                       "--quiet"])
        # then its alerts file is what replay_lines writes
        assert status == 0
        assert alerts.read_bytes() == run_bytes(city_lines(), until=UNTIL).alerts

    def test_alerts_go_to_stdout_by_default(self, tmp_path: Path) -> None:
        # given the file with bad lines
        source = _write(tmp_path, city_lines())
        # when the installed command runs without --alerts
        done = subprocess.run(
            [CLOSEDLOOP, "replay", str(source), "--until", UNTIL],
            capture_output=True, check=False, timeout=60,
        )
        # then the alerts are on stdout
        assert done.returncode == 0, done.stderr
        assert done.stdout == run_bytes(city_lines(), until=UNTIL).alerts
        assert done.stdout.count(b"\n") == 3

    def test_an_output_of_dash_is_standard_output(self, tmp_path: Path) -> None:
        # given the file with bad lines, alerts to a file and dead letters to '-'
        source = _write(tmp_path, city_lines())
        done = subprocess.run(
            [CLOSEDLOOP, "replay", str(source), "--until", UNTIL, "--quiet",
             "--alerts", str(tmp_path / "a.jsonl"), "--deadletter", "-"],
            capture_output=True, check=False, timeout=60, cwd=tmp_path,
        )
        # then the dead letters are on stdout, and no file named '-' was made
        assert done.returncode == 0, done.stderr
        letters = [json.loads(line) for line in done.stdout.splitlines()]
        assert [(d["line"], d["reason"]) for d in letters] == [(3, "not_json"),
                                                              (5, "naive_timestamp")]
        assert not (tmp_path / "-").exists()

    def test_an_unknown_option_is_said_with_the_commands_own_usage(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(["replay", "city.jsonl", "--foo"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "closedloop replay: error: unrecognized arguments: --foo" in err
        assert err.startswith("usage: closedloop replay ")

    def test_dash_reads_standard_input(self) -> None:
        # given the city on standard input
        data = b"\n".join(city_lines()) + b"\n"
        # when the command reads '-'
        done = subprocess.run(
            [CLOSEDLOOP, "replay", "-", "--until", UNTIL, "--quiet"],
            input=data, capture_output=True, check=False, timeout=60,
        )
        # then the alerts are the file's
        assert done.returncode == 0, done.stderr
        assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == [
            "positive", "unlocated", "test_missed",
        ]

    def test_a_missing_file_fails_with_a_clear_message(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # given a path that does not exist
        missing = tmp_path / "nowhere.jsonl"
        # when the command replays it
        status = main(["replay", str(missing)])
        out, err = capsys.readouterr()
        # then a non-zero exit naming the file on stderr
        assert status != 0
        assert str(missing) in err and "cannot read" in err
        assert out == ""

    def test_a_naive_until_is_refused_with_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # given --until without an offset
        source = _write(tmp_path, city_lines())
        alerts = tmp_path / "a.jsonl"
        # when the command starts
        status = main(["replay", str(source), "--until", "2022-09-07T09:00:00",
                       "--alerts", str(alerts)])
        _, err = capsys.readouterr()
        # then usage error 2, a message about the offset, no output written
        assert status == 2
        assert "offset" in err
        assert not alerts.exists()

    def test_until_is_inclusive_on_the_command_line(self, tmp_path: Path) -> None:
        # given a push at 09:00: unlocated due 11:00
        source = _write(tmp_path, [to_line(travel("traveller-1", T0))])
        before, on_time = tmp_path / "before.jsonl", tmp_path / "on_time.jsonl"
        # when replayed --until 10:59:59, then --until 11:00:00
        for until, out in ((at(T0, hours=2, seconds=-1), before), (at(T0, hours=2), on_time)):
            # then the alert is in the second output only
            assert main(["replay", str(source), "--until", until, "--alerts", str(out),
                         "--quiet"]) == 0
        assert _jsonl(before) == []
        assert [a["due_at"] for a in _jsonl(on_time)] == [at(T0, hours=2)]

    def test_blank_lines_are_skipped_and_line_numbers_stay_true(self, tmp_path: Path) -> None:
        # given blank lines 1 and 3 and a bad line 4
        source = _write(tmp_path, [b"", to_line(travel("traveller-1", T0)), b"", b"{oops"])
        letters = tmp_path / "d.jsonl"
        # when the file is replayed
        assert main(["replay", str(source), "--deadletter", str(letters), "--quiet",
                     "--alerts", str(tmp_path / "a.jsonl")]) == 0
        # then the dead letter says line 4
        assert [(d["line"], d["reason"]) for d in _jsonl(letters)] == [(4, "not_json")]


    def test_the_summary_says_what_was_skipped_made_and_not_kept(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # given two blank lines, a push, and a line of form feeds (not JSON white space)
        source = _write(tmp_path, [b"", to_line(travel("traveller-1", T0)), b"  ", b"\x0c"])
        # when replayed to two days after the push, its daily reports not kept
        assert main(["replay", str(source), "--until", at(T0, days=2),
                     "--alerts", str(tmp_path / "a.jsonl")]) == 0
        err = capsys.readouterr().err
        # then the summary counts the blank lines, and the form feeds as rejected
        assert "events read 2; applied 1; duplicates ignored 0; rejected 1; blank lines 2" in err
        assert "rejected by reason: not_json 1" in err
        # and it says where the daily reports would have been kept
        assert "(not kept: pass --reports FILE to keep them)" in err
        # and a --until the input had passed is said so
        late = _write(tmp_path, [to_line(travel("traveller-1", at(T0, days=3)))])
        assert main(["replay", str(late), "--until", at(T0, days=2), "--reports",
                     str(tmp_path / "r.jsonl"), "--alerts", str(tmp_path / "a.jsonl")]) == 0
        err = capsys.readouterr().err
        assert f"(--until {at(T0, days=2)} was behind the input's own clock" in err
        assert "not kept" not in err


class TestEscalationsOption:
    def test_escalations_go_to_their_own_file_and_never_to_alerts(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # given the city (a positive and a missed test nobody handles, a late locate)
        source = _write(tmp_path, city_lines())
        plain, alerts, escalations = (tmp_path / n for n in ("p.jsonl", "a.jsonl", "e.jsonl"))
        # when replayed with and without --escalations
        assert main(["replay", str(source), "--until", UNTIL, "--alerts", str(plain),
                     "--quiet"]) == 0
        assert main(["replay", str(source), "--until", UNTIL, "--alerts", str(alerts),
                     "--escalations", str(escalations)]) == 0
        # then the alerts are byte for byte the same either way, without an escalated one
        assert alerts.read_bytes() == plain.read_bytes()
        assert "escalated" not in {a["kind"] for a in _jsonl(alerts)}
        # and each unhandled alert escalated to level 2, then 3, in (raised_at, alert_id) order;
        # the unlocated one did not: the traveller was located (12:00) before 13:00
        written = _jsonl(escalations)
        assert {e["kind"] for e in written} == {"escalated"}
        by_alert: dict[str, list[int]] = {}
        for item in written:
            by_alert.setdefault(item["details"]["alert_kind"], []).append(
                item["details"]["level"])
        assert by_alert == {"positive": [2, 3], "test_missed": [2, 3]}
        assert written == sorted(written, key=lambda e: (e["raised_at"], e["alert_id"]))
        # and the summary counts them
        assert "escalations 4" in capsys.readouterr().err


class TestProgressLine:
    def test_the_progress_line_counts_the_alerts_raised_so_far(self) -> None:
        import io
        import re

        from closedloop.schemas.policy import default_policy
        from closedloop.streams.app.replay import replay_lines
        from closedloop.streams.cli.replay import ProgressLine
        from closedloop.streams.sim.feed import CityConfig, simulate

        # given a city long enough to redraw the line and raise alerts on the way
        lines = list(simulate(CityConfig(seed=3, people=300, days=3)))
        shown = io.StringIO()
        result = replay_lines(lines, default_policy(), progress=ProgressLine(shown, None, every=0))
        # then the line, redrawn at every input line, counts up to the alerts of the run
        counts = [int(n.replace(",", "")) for n in re.findall(r"alerts ([\d,]+)", shown.getvalue())]
        assert len(counts) == len(lines) and "…" not in shown.getvalue()
        assert counts == sorted(counts) and 0 < counts[-1] <= sum(result.alerts_by_kind.values())
