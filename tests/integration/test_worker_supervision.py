"""Supervision at its edges on the real broker (``tests/replay/test_supervision.py`` has the
same file through replay and the in-memory bus): the worker (``produce`` + ``clock --until``
+ ``worker --clock event``, four partitions, units spread over them) must publish exactly the
alerts, escalations and daily reports replay makes of it, and each unit's findings on
``unit-status``.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import at, supervision_edges, to_line
from worker_harness import CLOSEDLOOP, Deployment, replay_outputs

T0 = "2022-09-06T09:00:00+08:00"
UNTIL = at(T0, days=100)


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def test_supervision_edges_through_the_worker_equal_replay(
        deployment: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"".join(to_line(event) + b"\n" for event in supervision_edges(T0)))
    expected = replay_outputs(path, UNTIL, tmp_path)
    alerts, reports, escalations = (expected["alerts"], expected["daily-report"],
                                    expected["escalations"])
    # a unit's recheck failing twice, 2 h apart: its alerts escalate at one instant too
    assert len({e["details"]["alert_id"] for e in escalations}) >= 2
    assert {a["kind"] for a in alerts} == {"rectification_overdue", "recheck_missed",
                                           "recheck_failed", "repeat_offender"}
    worker = deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    deployment.assert_publishes(alerts, reports)
    # what the rules ignored is counted as replay counts it: one of each in this file
    assert ignored_counts(worker.web_port) == {  # type: ignore[attr-defined]
        "supervision:duplicate_findings": 1, "supervision:orphan_records": 1,
        "supervision:rectifications_ignored": 1}
    published = deployment.wait_for("escalations", len(escalations))
    assert ({e["alert_id"]: e for e in published}
            == {e["alert_id"]: e for e in escalations})
    # the ledger's feed: every unit's latest status names its findings
    statuses: dict[str, dict[str, object]] = {}
    for key, value in deployment.read("unit-status"):
        if value is not None and key is not None:
            statuses[key.decode()] = orjson.loads(value)
    assert {"u-fail-twice", "u-repeat", "u-dup"} <= set(statuses)
    fail_twice = statuses["u-fail-twice"]["findings"]
    assert isinstance(fail_twice, list) and fail_twice[0]["closed_at"] == at(T0, hours=6)
    # the sink writes them into the ledger; closedloop timeline shows a unit's story
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    sunk = subprocess.run([*CLOSEDLOOP, "sink", "--ledger", ledger, "--idle-exit", "3",
                           "--from-beginning"], env=deployment.env, capture_output=True,
                          text=True, timeout=120)
    assert sunk.returncode == 0, sunk.stderr
    shown = subprocess.run([*CLOSEDLOOP, "timeline", "u-fail-twice", "--ledger", ledger,
                            "--format", "json"], env=deployment.env, capture_output=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    whats = [entry["what"] for entry in orjson.loads(shown.stdout)]
    assert whats.count("recheck") == 3 and whats.count("rectified") == 3
    assert whats.count("finding") == 1 and whats.count("alert") == 2


def ignored_counts(port: int) -> dict[str, float]:
    """The worker's closedloop_records_ignored_total, by what."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return {sample.labels["what"]: sample.value
            for family in text_string_to_metric_families(text.decode())
            if family.name == "closedloop_records_ignored"
            for sample in family.samples if sample.name.endswith("_total")}
