"""A Kafka cluster of a test's own: ``deploy/kafka/start-cluster.sh`` on free ports, in a tmp
dir, with its nodes killed, stopped and started again as the test needs.

Like the other services: skipped on a developer's machine when the cluster cannot be started
(with the reason), failed when ``CI`` is set, never skipped there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from worker_harness import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kafka"
START_TIMEOUT_S = 240  # three JVMs starting on two shared cores


@dataclass
class Cluster:
    home: Path
    nodes: int = 3
    ports: list[int] = field(default_factory=list)
    controller_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = [free_port() for _ in range(self.nodes)]
            self.controller_ports = [free_port() for _ in range(self.nodes)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLOSEDLOOP_CLUSTER_DIR": str(self.home),
            "CLOSEDLOOP_CLUSTER_PORTS": ",".join(map(str, self.ports)),
            "CLOSEDLOOP_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, self.controller_ports)),
            "CLOSEDLOOP_PYTHON": sys.executable,
            "CLOSEDLOOP_KAFKA_START_TIMEOUT": str(START_TIMEOUT_S - 20),
        }

    def start(self, *nodes: int) -> None:
        """Start the nodes named (all by default) and wait until the cluster is whole: every
        node answers and every partition has all its replicas in sync."""
        done = subprocess.run(["bash", str(DEPLOY / "start-cluster.sh"), *map(str, nodes)],
                              env=self.env, capture_output=True, text=True,
                              timeout=START_TIMEOUT_S)
        assert done.returncode == 0, f"start-cluster.sh {nodes}: {done.stdout}{done.stderr}"

    def stop(self, *nodes: int) -> None:
        """Stop the nodes named (all by default) cleanly, as an upgrade does."""
        done = subprocess.run(["bash", str(DEPLOY / "stop-cluster.sh"), *map(str, nodes)],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"stop-cluster.sh {nodes}: {done.stdout}{done.stderr}"

    def discard(self) -> None:
        """Kill every node that runs: the cluster's data is thrown away with its tmp dir, and
        a clean shutdown of each would take seconds."""
        for node in range(1, self.nodes + 1):
            if (self.home / f"node{node}" / "kafka.pid").exists():
                self.kill(node)

    def kill(self, node: int) -> None:
        """``kill -9`` a node: no shutdown, no hand-over of its leaderships."""
        pid = int((self.home / f"node{node}" / "kafka.pid").read_text())
        with suppress(ProcessLookupError):  # it died by itself
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            assert time.monotonic() < deadline, f"node {node} (pid {pid}) outlived kill -9"
            time.sleep(0.1)

    def admin(self) -> Any:
        """A kafka-python admin client of the cluster (close it)."""
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)

    def leaders(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the node leading it, for the topics named."""
        admin = self.admin()
        try:
            described: list[dict[str, Any]] = admin.describe_topics(list(topics))
        finally:
            admin.close()
        return {(t.get("name", t.get("topic")), p.get("partition_index", p.get("partition"))):
                p.get("leader_id", p.get("leader")) for t in described for p in t["partitions"]}

    def busiest(self, topics: Iterable[str]) -> tuple[int, Counter[str]]:
        """The node leading the most partitions of ``topics``, and what it leads by topic."""
        leaders = self.leaders(topics)
        node = Counter(leaders.values()).most_common(1)[0][0]
        return node, Counter(topic for (topic, _), leader in leaders.items() if leader == node)


def _state(pid: int) -> str:
    """A process's state letter (Z: exited, waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2]


def started_cluster(home: Path, nodes: int) -> Cluster:
    """A running cluster of ``nodes`` nodes in ``home``, or a CI failure / local skip."""
    cluster = Cluster(home, nodes)
    try:
        cluster.start()
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        cluster.discard()
        message = f"deploy/kafka/start-cluster.sh could not start {nodes} node(s): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message + "\n(needs Java 17+ and the jars of deploy/kafka/fetch.sh: "
                    "`make services` fetches them)")
    return cluster
