"""Contract v1.1 bad input through ``closedloop replay``: implausible times and raw
identifiers in any string are dead-lettered, the run goes on and exits 0, and the good lines
give the alerts they give alone."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import T0, at, followup, lab, sampling, to_line, travel

from closedloop.agents.calendar import Calendar
from closedloop.streams.cli import main

UNTIL = at(T0, days=2)  # 2022-09-08T09:00:00+08:00
RECEIVED = at(T0, days=3)  # every good line is older than this
MOBILE = "13812345678"
FULL_WIDTH_MOBILE = "".join(chr(0xFF10 + int(d)) for d in MOBILE)


def good_lines() -> list[bytes]:
    """A traveller never located, and a positive single tube."""
    return [
        to_line(travel("traveller-1", T0, risk="inside_province", event_id="trv-1")),
        to_line(sampling("resident-1", "tube-1", T0, event_id="smp-1")),
        to_line(lab("tube-1", at(T0, hours=2), "positive", event_id="lab-1")),
    ]


EXTREME_LINES = [
    to_line(followup("traveller-1", "0001-01-01T00:00:00+08:00", event_id="x-1")),
    to_line(followup("traveller-1", "9999-12-31T23:59:59-23:59", event_id="x-2")),
    to_line(followup("traveller-1", "9999-12-31T23:59:59+14:00", event_id="x-3")),
    to_line(followup("traveller-1", "0001-01-01T00:00:00+14:00", event_id="x-4")),
    to_line(travel("traveller-2", T0, arrived="9999-12-31T23:59:59-23:59", event_id="x-5")),
    to_line(travel("traveller-3", T0, arrived="0001-01-01T00:00:00+08:00", event_id="x-6")),
]


def _replay(tmp_path: Path, lines: list[bytes], *options: str) -> tuple[int, Path, Path]:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    alerts, letters = tmp_path / "alerts.jsonl", tmp_path / "letters.jsonl"
    status = main(["replay", str(source), "--alerts", str(alerts), "--deadletter", str(letters),
                   "--quiet", *options])
    return status, alerts, letters


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


class TestImplausibleTimes:
    def test_extreme_timestamps_are_dead_lettered_and_good_alerts_unchanged(
        self, tmp_path: Path
    ) -> None:
        # given the good lines alone, and the same lines with extreme timestamps among them
        alone = tmp_path / "alone"
        mixed = tmp_path / "mixed"
        alone.mkdir()
        mixed.mkdir()
        options = ("--until", UNTIL, "--received-at", RECEIVED)
        status_alone, alerts_alone, _ = _replay(alone, good_lines(), *options)
        lines = good_lines()
        lines[1:1] = EXTREME_LINES
        # when both are replayed
        status, alerts, letters = _replay(mixed, lines, *options)
        # then both runs succeed, with the same alerts, byte for byte
        assert status == status_alone == 0
        assert alerts.read_bytes() == alerts_alone.read_bytes()
        assert {a["kind"] for a in _jsonl(alerts)} >= {"positive", "unlocated"}
        # and every extreme line is an implausible_time dead letter, with its line number
        assert [(d["line"], d["reason"]) for d in _jsonl(letters)] == [
            (n, "implausible_time") for n in range(2, 2 + len(EXTREME_LINES))
        ]

    def test_the_receipt_defaults_to_the_wall_clock_at_the_start(self, tmp_path: Path) -> None:
        # given a visit a day later than now
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        lines = [to_line(followup("person-1", tomorrow, event_id="fu-1"))]
        # when replayed without --received-at: rejected
        status, _, letters = _replay(tmp_path, lines)
        assert status == 0
        assert [d["reason"] for d in _jsonl(letters)] == ["implausible_time"]
        # and with a receipt later than it: accepted
        later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        status, _, letters = _replay(tmp_path, lines, "--received-at", later)
        assert status == 0
        assert _jsonl(letters) == []

    @pytest.mark.parametrize(
        ("option", "value", "names"),
        [
            ("--received-at", "yesterday", "not an RFC 3339 timestamp"),
            ("--received-at", "2022-09-06T09:00:00", "no UTC offset"),
            ("--received-at", "1999-12-31T23:59:59Z", "before 2000-01-01"),
            ("--received-at", "9999-12-31T23:59:59-23:59", "366 days after now"),
            ("--until", "9999-12-31T23:59:59-23:59", "366 days after the receipt"),
            ("--until", "0001-01-01T00:00:00+08:00", "before 2000-01-01"),
        ],
        ids=["words", "naive", "before-2000", "received-far-future", "until-far-future",
             "until-year-1"],
    )
    def test_a_bad_instant_option_is_a_clear_error_with_status_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str,
        names: str,
    ) -> None:
        status, _, _ = _replay(tmp_path, good_lines(), option, value)
        err = capsys.readouterr().err
        assert status == 2
        assert f"closedloop replay: {option}:" in err and names in err

    def test_help_explains_received_at(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["replay", "--help"])
        out = capsys.readouterr().out
        assert "--received-at T" in out and "implausible_time" in out

    @pytest.mark.parametrize(
        "epoch", [-(10**15), -62135625600, 253402387139, 10**15],
        ids=["far-past", "year-1", "year-9999", "far-future"],
    )
    def test_the_calendar_never_raises_on_an_extreme_instant(self, epoch: int) -> None:
        cal = Calendar(ZoneInfo("Asia/Shanghai"), 22 * 3600)
        assert cal.date_of(epoch) <= cal.report_date(epoch)
        assert cal.day_start(cal.date_of(epoch)) <= cal.cutoff_at(cal.date_of(epoch))
        assert cal.iso(epoch)


class TestRawIdentifiersAnywhere:
    def test_raw_identifiers_in_any_string_reach_no_output(self, tmp_path: Path) -> None:
        # given good lines and lines hiding a mobile number in every way v1.1 names
        escaped = "".join(f"\\u{ord(c):04x}" for c in MOBILE)
        bad = [
            to_line({"topic": MOBILE, "value": {}}),
            to_line(followup("person-2", T0) | {"source": f"+86{MOBILE}"}),
            to_line(sampling("person-3", f"tb-{MOBILE}", T0)),
            to_line(travel("person-4", T0, origin=f"call {FULL_WIDTH_MOBILE}")),
            b'{"topic":"followup","value":{"note":"' + escaped.encode() + b'"}}',
            b'{"topic":"followup","value":{"district":"\xb3\xaf","n":"' + MOBILE.encode()
            + b'"}}',
        ]
        lines = good_lines()
        lines[1:1] = bad
        # when replayed
        status, alerts, letters = _replay(
            tmp_path, lines, "--until", UNTIL, "--received-at", RECEIVED
        )
        # then each bad line is a raw_identifier dead letter and the run went on
        assert status == 0
        records = _jsonl(letters)
        assert [(d["line"], d["reason"]) for d in records] == [
            (n, "raw_identifier") for n in range(2, 2 + len(bad))
        ]
        assert {a["kind"] for a in _jsonl(alerts)} >= {"positive", "unlocated"}
        # and no copy holds the number, however it was written
        everything = alerts.read_bytes() + letters.read_bytes()
        for record in records:
            if record["original_encoding"] == "base64":
                everything += base64.b64decode(record["original"])
        for secret in (MOBILE, FULL_WIDTH_MOBILE, escaped, escaped.replace("\\", "\\\\")):
            assert secret.encode() not in everything, secret
        assert records[0]["topic"] is None
