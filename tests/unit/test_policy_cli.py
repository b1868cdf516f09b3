"""Every command that loads a policy stops on a bad one the same way: one line on stderr
naming the key, no traceback, exit status 2, and no raw identifier repeated.

In-process (an exception would fail the test as a traceback would), and once as the real
command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from closedloop.schemas.identifiers import contains_raw
from closedloop.streams.cli import main

RAW = "13812345678"
BAD_FILES: dict[str, bytes] = {
    "speed-nan": b"[identity]\nmax_speed_kmh = nan\n",
    "speed-inf": b"[identity]\nmax_speed_kmh = inf\n",
    "speed-negative": b"[identity]\nmax_speed_kmh = -1.5\n",
    "days-huge": b"[travel.regimens.high]\ndays = 9000000000000000000\n",
    "timezone-directory": b'timezone = "America"\n',
    "not-utf8": 'timezone = "上海"\n'.encode("gbk"),
    "raw-key": f"[cohorts]\n{RAW} = 24\n".encode(),
    "raw-key-in-identity": f'[identity]\n"+86{RAW}" = 1\n'.encode(),
    "raw-timezone": f'timezone = "{RAW}"\n'.encode(),
    "not-toml": b"[travel\n",
    "newline-in-key": b'"a\\nb" = 1\n',
    "late-share-percent": b"[entry]\nlate_share = 20\n",  # contract v1.2
    "entry-within-of-actions": b'[entry_within]\naction = "1h"\n',
}


def closedloop(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", *argv], capture_output=True,
        text=True, cwd=cwd, timeout=120, check=False,
    )


def assert_one_clean_line(err: str, command: str) -> None:
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"closedloop {command}: ")
    assert not contains_raw(err)


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_policy_check_refuses_in_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_bytes(BAD_FILES[name])
    assert main(["policy", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_clean_line(err, "policy")


@pytest.mark.parametrize("name", ["speed-nan", "days-huge", "timezone-directory", "not-utf8",
                                  "raw-key"])
def test_replay_refuses_the_same_policies_before_reading_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_bytes(BAD_FILES[name])
    (tmp_path / "in.jsonl").write_text("")
    assert main(["replay", str(tmp_path / "in.jsonl"), "--policy", str(path)]) == 2
    assert_one_clean_line(capsys.readouterr().err, "replay")


def test_the_real_command_line_shows_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "tz.toml").write_bytes(BAD_FILES["timezone-directory"])
    done = closedloop("policy", "check", "tz.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert_one_clean_line(done.stderr, "policy")


def test_a_replay_runs_under_the_most_extreme_policy_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from closedloop.streams.sim.feed import CityConfig, simulate

    policy = tmp_path / "largest.toml"
    policy.write_text(
        'allowed_lateness = "366d"\nmax_clock_skew = "366d"\ndedup_retention = "366d"\n'
        'state_retention = "366d"\n[travel]\nlocate_within = "366d"\nfollowup_every = "1h"\n'
        "[travel.regimens.high]\ndays = 366\ntest_days = [1, 366]\n"
        "[identity]\nmax_speed_kmh = 10000\nmax_samples_per_day = 1000\n"
        "[cohorts]\ncourier = 8784\n[escalation]\nafter = \"1s\"\n"
    )
    city = tmp_path / "city.jsonl"
    city.write_bytes(b"".join(line + b"\n" for line in simulate(CityConfig(people=50, days=1))))
    assert main(["policy", "check", str(policy)]) == 0
    assert main(["replay", str(city), "--policy", str(policy), "--quiet", "--alerts",
                 str(tmp_path / "alerts.jsonl"), "--received-at", "2022-09-10T00:00:00+08:00",
                 "--until", "2023-09-01T00:00:00+08:00"]) == 0
