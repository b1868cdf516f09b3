"""The three-broker cluster the chaos tests run on (``deploy/kafka/start-cluster.sh``), started
once per session on free ports in its tmp dir and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_harness import Cluster, started_cluster


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = started_cluster(tmp_path_factory.mktemp("kafka-cluster"), nodes=3)
    yield cluster
    cluster.discard()
