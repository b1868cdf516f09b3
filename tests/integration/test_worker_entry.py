"""Data entry at its edges on the real broker (``tests/replay/test_entry_stage.py`` has the
same file through replay and the in-memory bus): the worker (``produce`` + ``clock --until``
+ ``worker --clock event``, four partitions, sources and labs spread over them) must publish
exactly the alerts, escalations and daily reports replay makes of it. The first part's day
is closed (``clock --until`` past its cut-off, its report published) before the records read
after the cut-off are sent, as replay reads them after the clock passed it.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from helpers import at, entry_edges, to_line
from worker_harness import Deployment, replay_outputs

T0 = "2022-09-06T09:00:00+08:00"
UNTIL = at(T0, days=3)


def test_entry_edges_through_the_worker_equal_replay(deployment: Deployment,
                                                     tmp_path: Path) -> None:
    first, later, between = entry_edges(T0)
    whole, head, tail = (tmp_path / name for name in ("edges.jsonl", "head.jsonl",
                                                      "tail.jsonl"))
    for path, lines in ((whole, [*first, *later]), (head, first), (tail, later)):
        path.write_bytes(b"".join(to_line(line) + b"\n" for line in lines))
    expected = replay_outputs(whole, UNTIL, tmp_path)
    alerts, reports, escalations = (expected["alerts"], expected["daily-report"],
                                    expected["escalations"])
    kinds = {(a["kind"], a["subject"]) for a in alerts if a["kind"] in ("late_entries",
                                                                         "lab_silent")}
    assert kinds == {("late_entries", "sampling:site-share"),
                     ("late_entries", "sampling:site-over"),
                     ("late_entries", "followup:gw-night"),
                     ("late_entries", "sampling:site-after"),
                     ("lab_silent", "lab-late"), ("lab_silent", "lab-stuck")}
    day_one = [r for r in reports if r["date"] == "2022-09-06"]
    deployment.start_worker()
    deployment.produce(head, until=between)
    _wait_for_reports(deployment, len(day_one), "2022-09-06")
    deployment.produce(tail, until=UNTIL)
    deployment.assert_publishes(alerts, reports)
    published = deployment.wait_for("escalations", len(escalations))
    assert ({e["alert_id"]: e for e in published}
            == {e["alert_id"]: e for e in escalations})
    letters = [orjson.loads(v) for _, v in deployment.read("deadletter") if v is not None]
    assert sorted(letter["reason"] for letter in letters) == sorted(
        ["implausible_time", "naive_timestamp"])


def _wait_for_reports(deployment: Deployment, count: int, day: str,
                      timeout: float = 240) -> None:
    """Until the worker published ``count`` daily reports of ``day``: its cut-off is behind
    every stage partition's clock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [orjson.loads(v) for _, v in deployment.read("daily-report") if v is not None]
        if len({r["district"] for r in rows if r["date"] == day}) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"no daily report of {day} after {timeout:.0f} s")
