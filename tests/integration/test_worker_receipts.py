"""A record's own receipt on the real broker (contract v1.2 §1): ``closedloop produce`` puts
each line's ``received_at`` in the record's header, and the worker judges it as replay judges
the line's: more than ``max_clock_skew`` after now is ``implausible_time``, and an event
later than its own receipt plus the skew is too."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import T0, at, sampling, to_line
from worker_harness import CLOSEDLOOP, Deployment


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def _lines() -> list[bytes]:
    def received(envelope: object, when: str) -> bytes:
        line = orjson.loads(to_line(envelope))  # type: ignore[arg-type]
        line["received_at"] = when
        return orjson.dumps(line)

    return [
        # entered 20 minutes after the swab: fine
        received(sampling("rcpt-okay", "tb-r1", T0, event_id="ok"), at(T0, minutes=20)),
        # received in 2099: more than max_clock_skew after now
        received(sampling("rcpt-far", "tb-r2", T0, event_id="far"),
                 "2099-01-01T00:00:00+08:00"),
        # swabbed exactly max_clock_skew after its receipt, and one second more
        received(sampling("rcpt-skew", "tb-r3", at(T0, minutes=15), event_id="skew"), T0),
        received(sampling("rcpt-over", "tb-r4", at(T0, minutes=15, seconds=1),
                          event_id="over"), T0),
        # no receipt of its own: bounded by when it is sent, as before v1.2
        to_line(sampling("rcpt-none", "tb-r5", at(T0, minutes=30), event_id="none")),
    ]


def test_the_worker_judges_each_records_receipt_as_replay_judges_its_line(
        deployment: Deployment, tmp_path: Path) -> None:
    path, letters = tmp_path / "receipts.jsonl", tmp_path / "replay-deadletter.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in _lines()))
    # replay: the lines' own receipts
    subprocess.run([*CLOSEDLOOP, "replay", str(path), "--until", at(T0, days=1),
                    "--deadletter", str(letters), "--quiet", "--alerts", os.devnull],
                   check=True, timeout=120)
    replayed = {orjson.loads(orjson.loads(line)["original"])["value"]["event_id"]:
                orjson.loads(line)["reason"] for line in letters.read_bytes().splitlines()}
    assert replayed == {"far": "implausible_time", "over": "implausible_time"}
    # the worker: the records' received_at headers, as produce sets them
    deployment.start_worker()
    deployment.produce(path, until=at(T0, days=1))
    published = deployment.wait_for("deadletter", 2)
    refused = {orjson.loads(letter["original"])["event_id"]: letter for letter in published}
    assert {event_id: letter["reason"] for event_id, letter in refused.items()} == replayed
    assert refused["far"]["message"].startswith("received_at header: ")
