"""``closedloop bench hostile``: inputs an attacker (or a broken device) controls, whose cost
must grow in proportion to their size, never faster.

- *A long round with frequent progress*: one round whose window is N days, with
  ``round_progress_every = 60s`` (a report a minute), 200 persons on the roster sampled
  across the window; replayed with a window of N days and of 2N days. The ratio of the two
  times is about 2 when the cost is linear in the window (there are twice the reports), 4
  when it is quadratic.
- *A flapping county*: N ``area`` records of one county alternating high and low ten times a
  second, with a checkpoint entry from that county every 100 records; replayed with N and 2N
  records, the same ratio.
- *A long line holding an identifier*: lines of several shapes (CJK text ending in a
  full-width mobile number, ASCII with one mobile, escaped digits, Arabic-Indic digits, UTF-16,
  GB18030), each replayed alone by a fresh ``closedloop replay`` process whose peak RSS
  (its ``VmHWM``, Linux) is reported beside that of the same process replaying an empty
  file.

Times are CPU seconds, reported as ratios measured in the same run, the best of ``repeat``
runs each; nothing here is used by tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from closedloop.schemas.policy import Policy, policy_from_mapping
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.sim.city import SHANGHAI

__all__ = ["LINE_SHAPES", "area_city", "bench_linear", "line_memory", "long_line",
           "round_city"]

START: Final = datetime(2022, 9, 1, tzinfo=SHANGHAI)
PERSONS: Final = 200
DISTRICTS: Final = ("d0", "d1", "d2", "d3")
MOBILE: Final = "13812345678"


def _stamp(instant: datetime) -> str:
    return instant.isoformat()


def _line(topic: str, value: dict[str, Any]) -> bytes:
    return orjson.dumps({"topic": topic, "value": value})


def round_policy() -> Policy:
    """The default policy with a progress report every minute."""
    return policy_from_mapping({"rounds": {"round_progress_every": "60s"}})


def round_city(days: int) -> tuple[list[bytes], int]:
    """A roster, one round open ``days`` days, samplings spread over it; and the instant that
    replay must reach (the round's final report)."""
    opens = START + timedelta(days=1)
    closes = opens + timedelta(days=days)
    lines = [_line("population", {
        "event_id": f"pop-{n}", "occurred_at": _stamp(START), "person_id": f"person-{n:05d}",
        "district": DISTRICTS[n % len(DISTRICTS)], "status": "resident"}) for n in range(PERSONS)]
    lines.append(_line("round", {
        "event_id": "round-1", "occurred_at": _stamp(START + timedelta(hours=1)),
        "round_id": "long-round", "opens_at": _stamp(opens), "closes_at": _stamp(closes),
        "districts": ["*"]}))
    step = (closes - opens) / PERSONS
    for n in range(PERSONS - PERSONS // 10):  # one in ten is missed
        at = opens + step * n + timedelta(minutes=7)
        lines.append(_line("sampling", {
            "event_id": f"s-{n}", "occurred_at": _stamp(at), "person_id": f"person-{n:05d}",
            "tube_id": f"tube-{n:05d}", "site_id": "site-1", "district": DISTRICTS[0],
            "pool_size": 1}))
    until = closes + timedelta(days=2)
    return lines, int(until.timestamp())


def area_city(records: int) -> tuple[list[bytes], int]:
    """``records`` area records of one county flapping ten times a second, and a checkpoint
    entry from it every 100 records."""
    lines = []
    for n in range(records):
        at = START + timedelta(milliseconds=100 * n)
        lines.append(_line("area", {
            "event_id": f"area-{n}", "occurred_at": _stamp(at), "county": "county-1",
            "level": "high" if n % 2 else "low"}))
        if n % 100 == 99:
            lines.append(_line("checkpoint", {
                "event_id": f"cp-{n}", "occurred_at": _stamp(at), "person_id": f"p-{n:07d}",
                "checkpoint_id": "gate-1", "district": "d0", "role": "driver",
                "proof_sampled_at": None, "visited": ["county-1"]}))
    until = START + timedelta(milliseconds=100 * records) + timedelta(days=1)
    return lines, int(until.timestamp())


def _replay_seconds(lines: list[bytes], until: int, policy: Policy) -> float:
    """CPU seconds of one replay, every output written to the null device (a round with a
    report a minute writes tens of MB). CPU time, not wall time: on a machine shared with
    other work a ratio of wall times moves by half."""
    with open(os.devnull, "wb") as sink:
        started = time.process_time()
        replay_lines(lines, policy, until=until, alerts_out=sink, reports_out=sink,
                     round_reports_out=sink, deadletter_out=sink, received_at=float(until))
        return time.process_time() - started


def bench_linear(
    make: Callable[[int], tuple[list[bytes], int]], size: int, policy: Policy, repeat: int,
) -> dict[str, float]:
    """Replay of ``make(size)`` and ``make(2 * size)``: the best time of each and their ratio."""
    small, small_until = make(size)
    large, large_until = make(2 * size)
    best_small = best_large = float("inf")
    for _ in range(repeat):  # interleaved, so that a noisy moment hits both
        best_small = min(best_small, _replay_seconds(small, small_until, policy))
        best_large = min(best_large, _replay_seconds(large, large_until, policy))
    return {"small_s": best_small, "large_s": best_large, "ratio": best_large / best_small,
            "small_lines": len(small), "large_lines": len(large)}


# -- long lines ---------------------------------------------------------------------------------

def _full_width(text: str) -> str:
    return "".join(chr(0xFF10 + int(c)) for c in text)


def _arabic_indic(text: str) -> str:
    return "".join(chr(0x0660 + int(c)) for c in text)


def _json_line(note: str) -> bytes:
    return orjson.dumps({"topic": "sampling", "value": {
        "event_id": "long-1", "occurred_at": "2022-09-06T09:00:00+08:00",
        "person_id": "pz:0123456789abcdef", "tube_id": "tube-1", "site_id": "site-1",
        "district": "d0", "pool_size": 1, "note": note}})


def long_line(shape: str, size: int) -> bytes:
    """A line of about ``size`` bytes holding one mobile number, spelt as ``shape`` says."""
    if shape == "cjk-full-width":
        return _json_line("界" * (size // 3) + _full_width(MOBILE))
    if shape == "ascii":
        return _json_line("a" * size + " tel " + MOBILE)
    if shape == "escaped":  # written by a producer that escapes everything not ASCII
        return _json_line("界" * (size // 6)).decode().encode("ascii", "backslashreplace"
                                                          ).replace(
            b'"}}', "".join(f"\\u{ord(c):04x}" for c in MOBILE).encode() + b'"}}')
    if shape == "arabic-indic":
        return _json_line("ب" * (size // 2) + _arabic_indic(MOBILE))
    if shape == "utf-16":
        return _json_line("界" * (size // 2) + MOBILE).decode().encode("utf-16")
    if shape == "gb18030":
        return _json_line("界" * (size // 2) + _full_width(MOBILE)).decode().encode("gb18030")
    raise ValueError(shape)


LINE_SHAPES: Final = ("cjk-full-width", "ascii", "escaped", "arabic-indic", "utf-16", "gb18030")


# Run in the child: the replay, then the peak RSS of its own image. Not the child's
# ru_maxrss: Linux carries the high-water mark of the image before exec over, and a
# forked child starts as a copy of this process, which holds the cities built above.
_MEASURED: Final = """\
import sys
from closedloop.streams.cli import main
status = main(sys.argv[2:])
with open("/proc/self/status") as proc, open(sys.argv[1], "w") as out:
    out.write(next(line for line in proc if line.startswith("VmHWM:")).split()[1])
sys.exit(status)
"""


def _peak_rss_kib(path: Path, tmp: Path) -> tuple[int, float]:
    """Peak RSS (KiB) and wall time of a fresh ``closedloop replay`` of ``path`` (Linux)."""
    peak = tmp / "peak-kib"
    argv = [sys.executable, "-c", _MEASURED, str(peak), "replay", str(path), "--quiet",
            "--received-at", "2022-09-07T00:00:00+08:00",
            "--alerts", str(tmp / "alerts.jsonl"), "--deadletter", str(tmp / "dl.jsonl")]
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return int(peak.read_text()), time.perf_counter() - started


def line_memory(size: int, shapes: tuple[str, ...] = LINE_SHAPES) -> Iterator[dict[str, Any]]:
    """For each shape: the peak RSS of replaying a line of ``size`` bytes against the same
    process replaying an empty file, and what the dead letter says."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        empty = tmp / "empty.jsonl"
        empty.write_bytes(b"")
        base_kib, _ = _peak_rss_kib(empty, tmp)
        for shape in shapes:
            path = tmp / f"{shape}.jsonl"
            line = long_line(shape, size)
            path.write_bytes(line + b"\n")
            kib, seconds = _peak_rss_kib(path, tmp)
            letters = (tmp / "dl.jsonl").read_bytes().splitlines()
            reason = orjson.loads(letters[0])["reason"] if letters else "(accepted)"
            yield {"shape": shape, "bytes": len(line), "peak_kib": kib, "base_kib": base_kib,
                   "seconds": seconds, "reason": reason}

