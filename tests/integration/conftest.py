"""The three-broker cluster the chaos tests run on (``deploy/kafka/start-cluster.sh``), started
once per session on free ports in its tmp dir and stopped at the end; and a deployment of
workers on the single broker, stopped after each test (a module may define its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import Cluster, started_cluster
from worker_harness import Deployment


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = started_cluster(tmp_path_factory.mktemp("kafka-cluster"), nodes=3)
    yield cluster
    cluster.discard()


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()
