"""``closedloop clock --until T``: move an event-mode worker's clock to T (``--clock event``).

Once every input on the broker now is applied, the worker's clock moves to exactly T and
everything due by then fires, as ``replay --until T`` does. It writes one tick to every
partition of the worker's internal tick topics, each carrying the input topics' end offsets
so that it waits, in its partition, for the inputs sent before it (Kafka may deliver one
topic well ahead of another). Those topics are the worker's internals: run this with the
worker's credentials. Input producers (``closedloop produce``) write input topics only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from closedloop.streams.cli.produce import unacknowledged
from closedloop.streams.cli.replay import parse_instant
from closedloop.streams.engine.records import tick_record
from closedloop.streams.engine.topology import READERS, TICK_TOPICS, WIRING
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics, topic_name

__all__ = ["add_parser", "advance_clock", "run"]


class ClockError(RuntimeError):
    """The ticks did not all reach Kafka."""


def advance_clock(settings: KafkaSettings, until: int) -> int:
    """Send the ticks; returns how many. Raises :class:`ClockError` if any was refused."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka_python())
    futures: list[Any] = []
    try:
        for name in TICK_TOPICS:
            stage = WIRING[READERS[name][0]]
            after = _end_offsets(settings, (*stage.owns, *stage.quiet))
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


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--until", metavar="T", required=True,
                        help="the instant to move the clock to (RFC 3339 with offset)")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def run(args: argparse.Namespace) -> int:
    try:
        until = parse_instant(args.until)
    except ValueError as exc:
        print(f"closedloop clock: {exc}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix)
    declare_topics(settings)  # as the worker would: never the broker's auto-create
    try:
        sent = advance_clock(settings, until)
    except ClockError as exc:
        print(f"closedloop clock: {exc}", file=sys.stderr)
        return 1
    print(f"ticked {sent} stage partitions to {args.until}", file=sys.stderr)
    return 0
