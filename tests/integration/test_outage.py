"""A 60 s outage of the only broker: the workers stay up and quiet, say so, and go on by
themselves; afterwards the event-mode worker's outputs are replay's.

The broker is a private one-node cluster (``deploy/kafka/start-cluster.sh`` on free ports),
never the shared one. Two workers run on it: one in event mode, fed half a city before the
outage and half after, and one in wall mode that runs a transaction every second (its clock
marks), so that an outage cuts one short. While the broker is down, each says in ``/ready``
and in ``closedloop_kafka_unreachable_seconds`` that it cannot reach Kafka; the Kafka
client's retries reach its log at most once per cause every 10 s.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import Cluster, started_cluster
from worker_harness import (
    Deployment,
    assert_published_once,
    readiness,
    replay_outputs,
    simulate,
    split_file,
)

UNTIL = "2022-09-10T12:00:00+08:00"
OUTAGE_S = 60.0
MAX_LINES = 100  # what the worker may log from the broker's stop until it is ready again
_UNREACHABLE = re.compile(rb"^closedloop_kafka_unreachable_seconds ([0-9.e+]+)$", re.M)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = started_cluster(tmp_path_factory.mktemp("outage-kafka"), nodes=1)
    yield cluster
    cluster.discard()


def lines(process: subprocess.Popen[bytes]) -> int:
    return len(process.log_path.read_bytes().splitlines())  # type: ignore[attr-defined]


def unreachable_seconds(process: subprocess.Popen[bytes]) -> float:
    url = f"http://127.0.0.1:{process.web_port}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=5) as response:
        found = _UNREACHABLE.search(response.read())
    assert found is not None, "closedloop_kafka_unreachable_seconds is not exported"
    return float(found.group(1))


def test_a_60_s_broker_outage_leaves_few_log_lines_and_the_alerts_of_replay(
    broker: Cluster, tmp_path: Path
) -> None:
    # given half a city applied by an event-mode worker, and an idle wall-mode worker
    city = tmp_path / "city.jsonl"
    simulate(city, people=600, days=3, seed=5)
    expected = replay_outputs(city, UNTIL, tmp_path)
    first, second = split_file(city, 2)
    # two partitions a topic: the one broker restarts with half the partitions to load
    event = Deployment(broker.bootstrap, tmp_path / "event", partitions=2)
    wall = Deployment(broker.bootstrap, tmp_path / "wall", partitions=2)
    for deployment in (event, wall):
        deployment.workdir.mkdir()
    try:
        workers = [event.start_worker(), wall.start_worker(clock="wall")]
        event.produce(first)
        event.wait_settled()
        before = [lines(worker) for worker in workers]
        # when the broker is down for 60 s
        stopped = time.monotonic()
        broker.stop()
        for worker in workers:
            event.wait_until(lambda w=worker: readiness(w)[1].startswith("Kafka unreachable"),
                             "the worker says it cannot reach Kafka", timeout=30)
        while time.monotonic() - stopped < OUTAGE_S:  # the outage lasts; they keep saying so
            for worker in workers:
                assert worker.poll() is None, "a worker exited during the outage"
                ready, reason = readiness(worker)
                assert not ready and reason.startswith("Kafka unreachable"), reason
                assert unreachable_seconds(worker) > 0
            time.sleep(1)
        broker.start()
        # then both go on by themselves, having logged little
        for worker in workers:
            event.wait_ready(worker, timeout=120)
            assert unreachable_seconds(worker) == 0
        logged = [lines(worker) - was for worker, was in zip(workers, before, strict=True)]
        assert all(n < MAX_LINES for n in logged), logged
        # and the event-mode worker, given the rest, publishes replay's outputs, each once
        event.produce(second, until=UNTIL)
        event.wait_settled()
        assert_published_once(event, {name: expected[name]
                                      for name in ("alerts", "daily-report")})
    finally:
        event.stop_all()
        wall.stop_all()
