"""A worker restarted on its data directory restores its partitions from its snapshots and
the changelogs' tails, and still publishes exactly what replay does.

Each test feeds a simulated city with a testing round in parts, waits (on conditions) until
the worker's snapshots hold the changelogs' ends, kills it with -9, and restarts it on the
same directory, sometimes after another worker wrote the changelogs' tails or with some of
its snapshot files damaged, out of date or foreign. Alerts, daily and round reports must
equal replay's, each once.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from worker_harness import (
    City,
    Deployment,
    assert_published_once,
    replayed_round_city,
    split_file,
)

from closedloop.streams.kafka.snapshot import Header, read, write

UNTIL = "2022-09-10T12:00:00+08:00"
STAGES = ("tube", "person", "entry", "report")  # the stages the round city keys
RESTORED = re.compile(rb"restored \d+ keys of partitions .*? \((\d+) from snapshots, "
                      rb"(\d+) changelog records read\)")

ASSIGNED = re.compile(rb"closedloop: assigned partitions \[([\d, ]*)\]")


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> City:
    return replayed_round_city(tmp_path_factory.mktemp("restart-city"), 11, UNTIL)


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


def changelog_ends(deployment: Deployment) -> dict[tuple[str, int], int]:
    """(changelog, partition) -> its end as a read-committed reader sees it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(isolation_level="read_committed",
                             **deployment.consumer_options())
    try:
        tps = [TopicPartition(f"{deployment.app_id}-{stage}-state-changelog", p)
               for stage in STAGES for p in range(deployment.partitions)]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def snapshot_dir(worker: Any) -> Path:
    return Path(worker.log_path).parent / f"data{worker.number}" / "snapshots"


def owned(worker: Any) -> set[int]:
    """The partitions a worker logged it was assigned last."""
    found = ASSIGNED.findall(Path(worker.log_path).read_bytes())
    return {int(p) for p in found[-1].split(b",") if p.strip()} if found else set()


def snapshots_current(deployment: Deployment, worker: Any) -> bool:
    """Does the worker hold a snapshot of each changelog partition it owns at its end (a
    commit marker past it at most)?"""
    directory = snapshot_dir(worker)
    mine = owned(worker)
    for (topic, partition), end in changelog_ends(deployment).items():
        if partition not in mine:
            continue
        path = directory / f"{topic}.{partition}.snapshot"
        if not path.exists():
            return False
        if read(path)[0].offset < end - 1:
            return False
    return True


def restores(worker: Any) -> list[tuple[int, int]]:
    """(keys from snapshots, changelog records read) of each restore the worker logged."""
    return [(int(a), int(b)) for a, b in RESTORED.findall(Path(worker.log_path).read_bytes())]


def settle_and_snapshot(deployment: Deployment, worker: Any) -> None:
    deployment.wait_settled()
    deployment.wait_until(lambda: snapshots_current(deployment, worker),
                          "the worker's snapshots at the changelogs' ends")


def finish(deployment: Deployment, city: City) -> None:
    deployment.clock(UNTIL)
    deployment.wait_settled()
    assert_published_once(deployment, city[1])


def test_killed_after_a_snapshot_and_restarted_on_its_data_dir_equals_replay(
    deployment: Deployment, city: City
) -> None:
    first, second = split_file(city[0], 2)
    worker = deployment.start_worker()
    deployment.produce(first)
    settle_and_snapshot(deployment, worker)
    # when it is killed with -9 and restarted on the same data directory
    deployment.kill(worker)
    again = deployment.restart(worker)
    # then its state comes from its snapshots, with no changelog record to read after them
    # (one transaction's commit marker at most), and the rest of the city equals replay
    snapshot_keys, records = restores(again)[-1]
    assert snapshot_keys > 0 and records == 0
    deployment.produce(second)
    finish(deployment, city)


def test_a_tail_written_by_another_worker_and_bad_snapshots_are_restored_right(
    deployment: Deployment, city: City
) -> None:
    first, second, third = split_file(city[0], 3)
    worker = deployment.start_worker()
    deployment.produce(first)
    settle_and_snapshot(deployment, worker)
    deployment.kill(worker)
    # given another worker that consumed the second part meanwhile (the changelogs' tails)
    other = deployment.start_worker()
    deployment.produce(second)
    deployment.wait_settled()
    deployment.kill(other)
    # and, of the first worker's snapshots, one cut short, one ahead of its changelog and one
    # of a topic deleted and made again under the same name
    directory = snapshot_dir(worker)
    cut = directory / f"{deployment.app_id}-tube-state-changelog.0.snapshot"
    cut.write_bytes(cut.read_bytes()[:-100])
    for stage, change in (("person", {"offset": 10**9}), ("report", {"topic_id": "x"})):
        path = directory / f"{deployment.app_id}-{stage}-state-changelog.1.snapshot"
        header, pairs = read(path)
        fields = {name: getattr(header, name) for name in Header.__struct_fields__}
        write(path, Header(**{**fields, **change}), list(pairs))
    # when the first worker is restarted on its data directory
    again = deployment.restart(worker)
    log = Path(again.log_path).read_text()  # type: ignore[attr-defined]
    # then the three are discarded, named on one line, the rest read from the snapshots and
    # the tails, and the outputs are replay's
    discarded = [line for line in log.splitlines() if "snapshots not used" in line]
    assert len(discarded) == 1
    assert discarded[0].count("tube-state-changelog[0] damaged") == 1
    assert discarded[0].count("person-state-changelog[1] ahead of the changelog") == 1
    assert discarded[0].count("report-state-changelog[1] made for another topic") == 1
    snapshot_keys, records = restores(again)[-1]
    assert snapshot_keys > 0 and records > 0
    deployment.produce(third)
    finish(deployment, city)


def test_a_worker_stopped_and_restarted_keeps_its_partitions_without_a_rebalance(
    deployment: Deployment, city: City
) -> None:
    first, second = split_file(city[0], 2)
    staying = deployment.start_worker()
    leaving = deployment.start_worker()
    deployment.produce(first)
    settle_and_snapshot(deployment, leaving)
    generations = Path(staying.log_path).read_text().count("Worker ready")  # type: ignore[attr-defined]
    # when one of two static members is stopped and started again on its data directory
    deployment.kill(leaving, signal.SIGTERM)
    again = deployment.restart(leaving)
    # then it goes on from its snapshots, the other worker's partitions never moved (no
    # rebalance: it was never made ready again), and the outputs are replay's
    assert restores(again)[-1][0] > 0
    deployment.produce(second)
    finish(deployment, city)
    assert Path(staying.log_path).read_text().count("Worker ready") == generations  # type: ignore[attr-defined]
