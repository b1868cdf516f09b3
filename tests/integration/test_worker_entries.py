"""Entry checkpoints, risk areas and sentinel clinics at their edges, on the real broker.

One file holds every edge of ``tests/replay/test_entries.py`` that does not depend on a record
arriving later than the allowed lateness (each for its own person, so they do not interfere):
the worker (``produce`` + ``clock --until`` + ``worker --clock event``, four partitions, the
``area`` records on other partitions than the entries they govern) must publish exactly the
alerts and daily reports replay makes of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import area, at, checkpoint, clinic, sampling, to_line, travel
from worker_harness import Deployment, replay

T0 = "2022-09-06T09:00:00+08:00"
UNTIL = "2022-09-08T12:00:00+08:00"
H48 = 48 * 3600


def _edges() -> list[Any]:
    """(person, events) of each edge; persons numbered so keys spread over partitions."""
    cases: list[list[Any]] = [
        # proof exactly 48 h old, and one second older
        [checkpoint("edge-p48ok", T0, at(T0, seconds=-H48)),
         sampling("edge-p48ok", "tb-e01", at(T0, minutes=30))],
        [checkpoint("edge-p48no", T0, at(T0, seconds=-H48 - 1), role="passenger",
                    checkpoint_id="g2-3", district="jiading"),
         sampling("edge-p48no", "tb-e02", at(T0, minutes=30))],
        # no proof; a proof from after the entry
        [checkpoint("edge-noproof", at(T0, minutes=1), None)],
        [checkpoint("edge-future", at(T0, minutes=2), at(T0, hours=1))],
        # landing test exactly at the window's end, at the entry, one second late
        [checkpoint("edge-land-end", T0, at(T0, hours=-5)),
         sampling("edge-land-end", "tb-e03", at(T0, hours=2))],
        [checkpoint("edge-land-at", T0, at(T0, hours=-5)), sampling("edge-land-at", "tb-e04", T0)],
        [checkpoint("edge-land-late", T0, at(T0, hours=-5), checkpoint_id="rail-7"),
         sampling("edge-land-late", "tb-e05", at(T0, hours=2, seconds=1))],
        # counties: high, medium, several levels, one that turned low before the entry, one
        # whose level takes effect a second after it, one that turns low after it
        [checkpoint("edge-high", at(T0, minutes=3), at(T0, hours=-5), visited=["C-HI"],
                    district="minhang")],
        [checkpoint("edge-several", at(T0, minutes=4), at(T0, hours=-5),
                    visited=["C-MED", "C-HI", "C-LOW"])],
        [checkpoint("edge-was-high", at(T0, minutes=5), at(T0, hours=-5), visited=["C-WAS"])],
        [checkpoint("edge-too-soon", T0, at(T0, hours=-5), visited=["C-SOON"])],
        [checkpoint("edge-turns-low", at(T0, minutes=6), at(T0, hours=-5), visited=["C-TURN"])],
        # an area record arriving just after the entry it governs (placed below)
        [checkpoint("edge-area-after", at(T0, minutes=7), at(T0, hours=-5), visited=["C-JUST"])],
        # sentinel: a pharmacy's 24 h, tested at the window's end and untested; a hospital's 2 h
        [clinic("edge-pharm-ok", T0, "pharmacy", reason="antipyretic"),
         sampling("edge-pharm-ok", "tb-e06", at(T0, hours=24))],
        [clinic("edge-pharm-no", T0, "pharmacy", reason="antipyretic", facility_id="ph-8",
                district="xuhui")],
        [clinic("edge-hosp-no", at(T0, minutes=8), "hospital", district="xuhui"),
         sampling("edge-hosp-no", "tb-e07", at(T0, hours=3))],
        # a travel push, whose alerts say their source is travel
        [travel("edge-travel", at(T0, minutes=9))],
    ]
    levels = [area("C-HI", at(T0, days=-1), "high"), area("C-MED", at(T0, days=-1), "medium"),
              area("C-LOW", at(T0, days=-1), "low"), area("C-WAS", at(T0, days=-3), "high"),
              area("C-WAS", at(T0, hours=-1), "low"), area("C-SOON", at(T0, seconds=1), "high"),
              area("C-TURN", at(T0, days=-3), "high")]
    events = sorted((event for case in cases for event in case),
                    key=lambda event: event["value"]["occurred_at"])  # in event time
    entry = next(i for i, e in enumerate(events)
                 if e["value"].get("person_id") == "edge-area-after")
    # within the lateness of every record before it: the clock has not passed the entry
    events.insert(entry + 1, area("C-JUST", at(T0, minutes=-1), "medium"))
    events = [*levels, *events, area("C-TURN", at(T0, minutes=6, seconds=30), "low"),
              sampling("edge-clock", "tb-e99", at(T0, days=1, hours=1))]
    return events


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def test_entry_and_sentinel_edges_through_the_worker_equal_replay(
        deployment: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "edges.jsonl"
    path.write_bytes(b"".join(to_line(event) + b"\n" for event in _edges()))
    alerts, reports = replay(path, UNTIL, tmp_path)
    kinds = {a["kind"] for a in alerts}
    assert {"entry_without_proof", "landing_test_missed", "sentinel_untested",
            "unlocated"} <= kinds
    assert {a["details"].get("source") for a in alerts if a["kind"] == "unlocated"} == {
        "checkpoint", "travel"}
    deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    deployment.assert_publishes(alerts, reports)
