"""The ticks of ``closedloop clock --until T``: one to every partition of the worker's tick
topics, each waiting, in its partition, for the input offsets sent before it (see the
command's help for what it is for)."""

from __future__ import annotations

from typing import Any

from closedloop.streams.app.produce import unacknowledged
from closedloop.streams.engine.records import tick_record
from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name

__all__ = ["ClockError", "advance_clock"]


class ClockError(RuntimeError):
    """The ticks did not all reach Kafka."""


def advance_clock(settings: KafkaSettings, until: int) -> int:
    """Send the ticks; returns how many. Raises :class:`ClockError` if any was refused."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka_python())
    futures: list[Any] = []
    try:
        for name in TOPOLOGY.ticks:
            stage = TOPOLOGY.wiring[TOPOLOGY.readers[name][0]]
            after = _end_offsets(settings, stage.inputs)
            address = topic_name(settings.prefix, name)
            for partition in sorted(producer.partitions_for(address)):
                futures.append(producer.send(address, value=tick_record(until, after),
                                             partition=partition))
        producer.flush()
        failed = unacknowledged(futures)
        if failed:
            raise ClockError(f"{failed} of {len(futures)} ticks were not acknowledged")
        return len(futures)
    finally:
        producer.close()


def _end_offsets(settings: KafkaSettings, inputs: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """{topic: {partition: end offset}} of the named input topics, now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python())
    try:
        ends: dict[str, dict[str, int]] = {}
        for name in inputs:
            address = topic_name(settings.prefix, name)
            partitions = consumer.partitions_for_topic(address) or set()
            offsets = consumer.end_offsets([TopicPartition(address, p) for p in partitions])
            ends[name] = {str(tp.partition): offset for tp, offset in offsets.items()}
        return ends
    finally:
        consumer.close()
