"""On a three-broker cluster, whatever happens to the brokers and the workers mid-run, the
worker publishes exactly replay's alerts, daily reports and round reports, each once.

The cluster is ``deploy/kafka/start-cluster.sh``'s (replication 3, min.insync.replicas 2, a
3-voter controller quorum), started once for the session. Each test feeds a simulated city
with a testing round (with its noise) in parts and, between and during them, kills a broker
with -9, restarts all three one after another, or stops a worker with SIGTERM and starts it
again, as a rolling deploy does. It waits on conditions only (input written, the workers'
group caught up, a worker's ``/ready``), then compares every output record with replay's.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import Cluster
from worker_harness import (
    CLOSEDLOOP,
    City,
    Deployment,
    assert_published_once,
    replayed_round_city,
    split_file,
)

UNTIL = "2022-09-10T12:00:00+08:00"  # past the city's last event: worker and replay end alike
INPUTS = ("sampling", "lab", "travel", "followup", "cohort", "population", "round")
STAGES = ("tube", "person", "report")
# Two partitions a topic: each of two workers still owns one, and a broker restarted hands
# over and catches up half the replicas the suite's usual four would give it.
PARTITIONS = 2


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> City:
    return replayed_round_city(tmp_path_factory.mktemp("chaos-city"), 5, UNTIL)


@pytest.fixture
def deployment(kafka_cluster: Cluster, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_cluster.bootstrap, tmp_path, replication=3,
                          partitions=PARTITIONS)
    yield deployed
    deployed.stop_all()


def producing(deployment: Deployment, part: Path) -> subprocess.Popen[bytes]:
    """``closedloop produce`` of a part, running while the test does something else."""
    return subprocess.Popen([*CLOSEDLOOP, "produce", str(part)], env=deployment.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def produced(process: subprocess.Popen[bytes]) -> None:
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output.decode("utf-8", "replace")[-2000:]


def input_written(deployment: Deployment) -> int:
    """Records on the deployment's input topics now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**deployment.consumer_options())
    try:
        tps = [TopicPartition(f"{deployment.prefix}.{name}.v1", p)
               for name in INPUTS for p in range(deployment.partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def finish(deployment: Deployment, city: City) -> None:
    """Move the clock to UNTIL, wait until the workers applied everything, compare."""
    deployment.clock(UNTIL)
    deployment.wait_settled()
    assert_published_once(deployment, city[1])


def test_the_worker_topics_are_replicated_on_three_brokers_two_in_sync(
    deployment: Deployment, kafka_cluster: Cluster, city: City
) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    from closedloop.streams.kafka.settings import KafkaSettings
    from closedloop.streams.kafka.topics import declare_topics

    # when the producer's tool declares the topics with CLOSEDLOOP_REPLICATION=3
    settings = KafkaSettings(bootstrap=kafka_cluster.bootstrap, prefix=deployment.prefix,
                             partitions=PARTITIONS, replication=3)
    created = declare_topics(settings)
    # then each has three replicas, all in sync, and acknowledges a write held by two
    admin = kafka_cluster.admin()
    try:
        for topic in settled(admin, created):
            assert {len(p.get("replica_nodes", p.get("replicas", ())))
                    for p in topic["partitions"]} == {3}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in created])
    finally:
        admin.close()
    assert min_insync(configs) == dict.fromkeys(created, "2")


def settled(admin: Any, topics: list[str]) -> list[dict[str, Any]]:
    """The topics as the cluster describes them, once every broker's metadata holds their
    partitions: a topic just created may be described with none for a moment."""
    deadline = time.monotonic() + 30
    while True:
        found = admin.describe_topics(topics)
        if all(topic["partitions"] and all(p.get("leader_id", -1) >= 0
                                           for p in topic["partitions"]) for topic in found):
            return list(found)
        assert time.monotonic() < deadline, f"topics without their partitions: {found}"
        time.sleep(0.2)  # polling the metadata: the condition itself is what is awaited


def min_insync(described: Any) -> dict[str, str]:
    """Topic -> min.insync.replicas from kafka-python's describe_configs (3.x: a dict; 2.x:
    the protocol's responses)."""
    if isinstance(described, dict):
        return {name: config["min.insync.replicas"]["value"]
                for name, config in described["topic"].items()}
    return {resource["resource_name"]: next(c["config_value"] for c in resource["configs"]
                                            if c["config_names"] == "min.insync.replicas")
            for response in described for resource in response.to_object()["resources"]}


def test_the_leader_of_inputs_and_changelogs_killed_mid_run_changes_nothing(
    deployment: Deployment, kafka_cluster: Cluster, city: City
) -> None:
    first, second = split_file(city[0], 2)
    deployment.start_worker()
    deployment.produce(first)
    deployment.wait_settled()
    # the node leading the most partitions of the inputs and the state changelogs
    inputs = [f"{deployment.prefix}.{name}.v1" for name in INPUTS]
    changelogs = [f"{deployment.app_id}-{stage}-state-changelog" for stage in STAGES]
    victim, led = kafka_cluster.busiest(inputs + changelogs)
    assert set(led) & set(inputs) and set(led) & set(changelogs), led
    # when it is killed with -9 while the second half is being produced and consumed
    before = input_written(deployment)
    sending = producing(deployment, second)
    deployment.wait_until(lambda: input_written(deployment) > before, "the second half begun")
    kafka_cluster.kill(victim)
    produced(sending)
    # and started again once the input is in
    kafka_cluster.start(victim)
    # then the outputs are replay's, each once
    finish(deployment, city)


def test_all_three_brokers_restarted_one_after_another_change_nothing(
    deployment: Deployment, kafka_cluster: Cluster, city: City
) -> None:
    parts = list(split_file(city[0], 4))
    deployment.start_worker()
    deployment.produce(parts[0])
    # a rolling restart: each node stopped cleanly while a part is produced and consumed,
    # started again and back in sync before the next
    for node, part in zip(range(1, 4), parts[1:], strict=True):
        sending = producing(deployment, part)
        kafka_cluster.stop(node)
        kafka_cluster.start(node)
        produced(sending)
    finish(deployment, city)


def test_a_worker_stopped_and_restarted_mid_run_as_a_rolling_deploy_does_changes_nothing(
    deployment: Deployment, city: City
) -> None:
    first, second = split_file(city[0], 2)
    leaving = deployment.start_worker()
    deployment.start_worker()
    deployment.produce(first)
    deployment.wait_settled()
    # when one of two workers is stopped (SIGTERM: it commits what it handled; a static
    # member, it keeps its place in the group) while the second half arrives, and comes back
    # on its data directory: it rejoins under the same identity and goes on with its
    # partitions
    deployment.kill(leaving, signal.SIGTERM)
    assert leaving.returncode == 0, leaving.log_path.read_text()[-2000:]  # type: ignore[attr-defined]
    sending = producing(deployment, second)
    deployment.restart(leaving)
    produced(sending)
    finish(deployment, city)

