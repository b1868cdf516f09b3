"""``closedloop produce`` on the real broker: every line reaches a topic or the dead letters.

A keyless record on a compacted topic (``cohort``) makes the broker refuse the whole batch it
travels in, so produce must dead-letter it itself and still deliver its neighbours.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from worker_harness import CLOSEDLOOP, Deployment


def cohort(event_id: str, person: str | None) -> bytes:
    value = {"event_id": event_id, "occurred_at": "2022-09-06T09:00:00+08:00",
             "cohort": "cold_chain", "district": "xuhui", "active": True}
    if person is not None:
        value["person_id"] = person
    return orjson.dumps({"topic": "cohort", "value": value})


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    """A fresh prefix, its topics deleted afterwards."""
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def test_a_keyless_cohort_record_is_dead_lettered_and_its_neighbours_arrive(
    kafka_bootstrap: str, deployment: Deployment, tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient

    from closedloop.streams.kafka.topics import ensure_topics, topic_specs

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        ensure_topics(admin, topic_specs(deployment.prefix, 4, 1))
    finally:
        admin.close()
    lines = [cohort(f"c{i}", f"p:{i:012d}") for i in range(20)]
    lines.insert(10, cohort("c-keyless", None))
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run([*CLOSEDLOOP, "produce", str(source)], env=deployment.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    delivered = {orjson.loads(v)["event_id"] for _, v in deployment.read("cohort")}
    assert delivered == {f"c{i}" for i in range(20)}
    letters = [orjson.loads(v) for _, v in deployment.read("deadletter")]
    assert [letter["reason"] for letter in letters] == ["missing_field"]
    assert "c-keyless" in str(letters[0])


def test_produce_declares_the_topics_with_the_configured_partitions_and_a_mismatch_is_one_line(
    kafka_bootstrap: str, deployment: Deployment, tmp_path: Path
) -> None:
    # given no topics yet, and CLOSEDLOOP_PARTITIONS=3 (the broker's auto-create would give 4)
    env = {**deployment.env, "CLOSEDLOOP_PARTITIONS": "3"}
    source = tmp_path / "in.jsonl"
    source.write_bytes(cohort("c1", "p:000000000001") + b"\n")
    # when a producer publishes
    done = subprocess.run([*CLOSEDLOOP, "produce", str(source)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # then every topic of the contract and the engine exists with 3 partitions
    from kafka import KafkaAdminClient

    from closedloop.streams.kafka.topics import topic_specs

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        addresses = [spec.address for spec in topic_specs(deployment.prefix, 3, 1)]
        described = admin.describe_topics(addresses)
    finally:
        admin.close()
    counts = {d.get("topic", d.get("name")): len(d["partitions"]) for d in described}
    assert counts == dict.fromkeys(addresses, 3)
    # and a worker told another count stops with one clear line, no traceback
    worker = subprocess.run(
        [*CLOSEDLOOP, "worker", "--clock", "event", "--data-dir", str(tmp_path / "data")],
        env={**deployment.env, "CLOSEDLOOP_PARTITIONS": "5"},
        capture_output=True, text=True, timeout=120,
    )
    assert worker.returncode == 1
    assert "Traceback" not in worker.stderr
    lines = [line for line in worker.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has 3 partitions, expected 5" in lines[0], worker.stderr
    assert "CLOSEDLOOP_PARTITIONS" in lines[0]


def test_a_line_holding_a_raw_identifier_reaches_no_input_topic(
    deployment: Deployment, tmp_path: Path
) -> None:
    from closedloop.schemas.identifiers import contains_raw

    # given lines whose event holds a mobile number: as the person (the record key too), as
    # a district grouped by Unicode hyphens (the roster topic is compacted: kept for ever),
    # as a number in an unknown field; and a clean line between them
    sampling = {"event_id": "s1", "occurred_at": "2022-09-06T09:00:00+08:00",
                "person_id": "13912345678", "tube_id": "tb-1", "site_id": "site-1",
                "district": "xuhui", "pool_size": 1}
    roster = {"event_id": "p1", "occurred_at": "2022-09-06T09:00:00+08:00",
              "person_id": "p:000000000001", "district": "139\u20101234\u20105678",
              "status": "resident"}
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([
        orjson.dumps({"topic": "sampling", "value": sampling}),
        orjson.dumps({"topic": "population", "value": roster}),
        cohort("c1", "p:000000000001"),
        cohort("c2", "p:000000000002").replace(b'"active"', b'"extra":13912345678,"active"'),
    ]) + b"\n")
    # when they are produced
    done = subprocess.run([*CLOSEDLOOP, "produce", str(source)], env=deployment.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # then only the clean line is on an input topic, and the others are dead letters, redacted
    assert [orjson.loads(v)["event_id"] for _, v in deployment.read("cohort")] == ["c1"]
    assert deployment.read("sampling") == [] and deployment.read("population") == []
    letters = deployment.read("deadletter")
    assert sorted(orjson.loads(v)["line"] for _, v in letters) == [1, 2, 4]
    assert {orjson.loads(v)["reason"] for _, v in letters} == {"raw_identifier"}
    assert not any(contains_raw(v.decode(), escapes=True) for _, v in letters)


def test_each_record_carries_its_lines_receipt_as_the_received_at_header(
    deployment: Deployment, tmp_path: Path
) -> None:
    import time

    # given a line with its own receipt, one without, and one whose receipt has no offset
    with_receipt = orjson.loads(cohort("c1", "p:000000000001"))
    with_receipt["received_at"] = "2022-09-06T09:20:00+08:00"
    naive = orjson.loads(cohort("c3", "p:000000000003"))
    naive["received_at"] = "2022-09-06T09:20:00"
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([orjson.dumps(with_receipt), cohort("c2", "p:000000000002"),
                                   orjson.dumps(naive)]) + b"\n")
    sent = time.time()
    # when they are produced
    done = subprocess.run([*CLOSEDLOOP, "produce", str(source)], env=deployment.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # then the header says the line's receipt, or none; the timestamp is the time of sending
    records = {orjson.loads(r.value)["event_id"]: r for r in deployment.records("cohort")}
    assert set(records) == {"c1", "c2"}
    assert records["c1"].headers == [("received_at", b"2022-09-06T09:20:00+08:00")]
    assert records["c2"].headers == [("received_at", b"none")]
    assert all(r.timestamp / 1000 >= sent - 60 for r in records.values())
    # and the line without an offset is a dead letter saying why
    (letter,) = [orjson.loads(v) for _, v in deployment.read("deadletter")]
    assert (letter["reason"], letter["line"]) == ("naive_timestamp", 3)
    assert letter["message"].startswith("received_at:")


def test_inspection_records_are_keyed_by_their_unit(
    kafka_bootstrap: str, deployment: Deployment, tmp_path: Path
) -> None:
    def inspection(n: int) -> bytes:
        return orjson.dumps({"topic": "inspection", "value": {
            "event_id": f"i{n}", "occurred_at": "2022-09-06T09:00:00+08:00",
            "unit_id": f"venue-{n % 3}", "unit_kind": "venue", "district": "xuhui",
            "record": "finding", "finding_id": f"f{n}", "category": "venue_code",
            "severity": "major"}})

    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(inspection(n) for n in range(9)) + b"\n")
    done = subprocess.run([*CLOSEDLOOP, "produce", str(source)], env=deployment.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = deployment.read("inspection")
    assert len(records) == 9
    keyed = {(key, orjson.loads(value)["unit_id"]) for key, value in records}
    assert keyed == {(f"venue-{n}".encode(), f"venue-{n}") for n in range(3)}
