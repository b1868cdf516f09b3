"""Escalation on the worker equals escalation in replay, actions included.

Operator actions are keyed by the alert's subject: a person (person stage) or a tube (tube
stage, which reads the action topic too). ``produce`` + ``clock --until`` +
``worker --clock event`` must publish on ``escalations`` exactly what
``replay --escalations`` writes, and nothing of it on ``alerts``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import T0, action, at, epoch, sampling, to_line, travel
from worker_harness import CLOSEDLOOP, Deployment

from closedloop.schemas.ids import alert_id

UNTIL = at(T0, days=1)
TUBE = "tube-esc-0001"


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def city(path: Path) -> None:
    """Three pushes nobody locates, one acked; a tube never received, its transport acked."""
    acked = "traveller-esc-b"
    transport = alert_id("lab_sla_breached", TUBE, epoch(at(T0, hours=4)))
    events = [
        travel("traveller-esc-a", T0),
        travel(acked, T0),
        travel("traveller-esc-c", at(T0, minutes=10)),
        sampling("traveller-esc-c", TUBE, at(T0, minutes=20)),
        action(alert_id("unlocated", acked, epoch(at(T0, hours=2))), acked, at(T0, hours=3)),
        action(transport, TUBE, at(T0, hours=5), "resolve"),
    ]
    path.write_bytes(b"".join(to_line(event) + b"\n" for event in events))


def test_worker_escalations_equal_replay(deployment: Deployment, tmp_path: Path) -> None:
    # given the city replayed with --escalations
    path, expected_path = tmp_path / "city.jsonl", tmp_path / "escalations.jsonl"
    city(path)
    subprocess.run([*CLOSEDLOOP, "replay", str(path), "--until", UNTIL, "--quiet",
                    "--alerts", str(tmp_path / "alerts.jsonl"),
                    "--escalations", str(expected_path)], check=True, timeout=120)
    expected = [orjson.loads(line) for line in expected_path.read_bytes().splitlines()]
    escalated = {e["details"]["alert_id"] for e in expected}
    assert alert_id("lab_sla_breached", TUBE, epoch(at(T0, hours=4))) not in escalated
    assert alert_id("unlocated", "traveller-esc-b", epoch(at(T0, hours=2))) not in escalated
    assert len(expected) > 4
    # when a worker runs the same events on the broker
    deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    published = deployment.wait_for("escalations", len(expected))
    # then the same escalations (ids and content), and none of them on alerts
    by_id = {e["alert_id"]: e for e in published}
    assert by_id == {e["alert_id"]: e for e in expected}
    alerts = deployment.wait_for("alerts", 1)
    assert {a["kind"] for a in alerts} and "escalated" not in {a["kind"] for a in alerts}
