"""Topic names and configurations, and their creation with kafka-python's admin client.

Names are ``{prefix}.{name}.v1`` (CONTRACT.md §3). Cleanup policy and retention come from
the topology (:data:`~closedloop.streams.engine.topology.TOPOLOGY`), which the AsyncAPI
document is generated from too, so the topics a worker creates are the ones it describes.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.settings import KafkaSettings, KafkaSetupError

__all__ = [
    "TopicSpec",
    "declare_topics",
    "ensure_topics",
    "min_insync_replicas",
    "topic_name",
    "topic_specs",
]

DAY_MS: Final = 86_400_000

def topic_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str  # short name, e.g. "sampling"
    address: str  # full topic name
    partitions: int
    replication: int
    config: dict[str, str]


def topic_specs(prefix: str, partitions: int, replication: int) -> list[TopicSpec]:
    """Every topic of the contract plus the engine's internal ones, with their configs."""
    specs = []
    for topic in TOPOLOGY.topics:
        config = {"cleanup.policy": "compact" if topic.compact else "delete"}
        if topic.retention_days is not None:
            config["retention.ms"] = str(topic.retention_days * DAY_MS)
        else:
            config["delete.retention.ms"] = str(DAY_MS)
        specs.append(TopicSpec(name=topic.name, address=topic_name(prefix, topic.name),
                               partitions=partitions, replication=replication, config=config))
    return specs


def min_insync_replicas(replication: int) -> int:
    """The replicas that must hold a record before it is acknowledged (``acks=all``): a
    majority from three replicas on (2 of 3: one broker may be down, none may lose an
    acknowledged record), else 1 (with 2 replicas, 2 would stop every write whenever
    either broker restarts)."""
    return replication // 2 + 1 if replication >= 3 else 1


def ensure_topics(admin: Any, specs: list[TopicSpec]) -> list[str]:
    """Create missing topics; refuse existing ones whose partition count differs.

    Co-partitioning is what joins a stage's inputs with its table, so a mismatch is an error
    to fix (``kafka-topics --alter`` or a new prefix), never something to run with. A topic
    is created with ``min.insync.replicas`` from its replication factor
    (:func:`min_insync_replicas`); an existing one keeps what it has.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    existing = set(admin.list_topics())
    missing = [spec for spec in specs if spec.address not in existing]
    if missing:
        with suppress(TopicAlreadyExistsError):  # another worker created them meanwhile
            admin.create_topics(
                [
                    NewTopic(spec.address, spec.partitions, spec.replication,
                             topic_configs={"min.insync.replicas": str(
                                 min_insync_replicas(spec.replication)), **spec.config})
                    for spec in missing
                ]
            )
    counts: dict[str, int] = {}
    for _ in range(40):  # a topic just created may take a moment to show its partitions
        described = admin.describe_topics([spec.address for spec in specs])
        counts = {d.get("topic", d.get("name")): len(d["partitions"]) for d in described}
        if all(counts.get(spec.address) for spec in specs):
            break
        time.sleep(0.25)
    wrong = [
        f"{spec.address} has {counts.get(spec.address)} partitions, expected {spec.partitions}"
        for spec in specs
        if counts.get(spec.address) != spec.partitions
    ]
    if wrong:
        raise TopicMismatch("topics are not co-partitioned: " + "; ".join(wrong))
    return [spec.address for spec in missing]


class TopicMismatch(RuntimeError):
    """Existing topics whose partition count is not the one this client was told to use."""


def declare_topics(settings: KafkaSettings) -> list[str]:
    """Create every topic of the contract and the engine, as the worker and producers agree.

    Producers and workers declare the same topics the same way (``CLOSEDLOOP_PARTITIONS``),
    rather than leaving it to the broker's auto-create (off in most production clusters,
    and with its own partition count). A mismatch is one line for the operator
    (:class:`KafkaSetupError`), never a traceback. Returns the topics created.
    """
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python())
    try:
        return ensure_topics(admin, topic_specs(settings.prefix, settings.partitions,
                                                settings.replication))
    except TopicMismatch as exc:
        raise KafkaSetupError(
            f"{exc}; set CLOSEDLOOP_PARTITIONS to the existing count (every producer and worker "
            f"must agree), or use a new CLOSEDLOOP_TOPIC_PREFIX (and a new --app-id for a "
            f"worker: its state topics are named after it)"
        ) from None
    finally:
        admin.close()
