"""Publishing replay lines to their input topics, keyed as the contract says (what
``closedloop produce`` and the worker benchmarks send); a line that is no envelope of an input
topic, or that holds a raw identifier anywhere (CONTRACT.md §2: none may reach a topic, and an
input topic keeps what it is given, a compacted one for ever), goes to the dead letters,
redacted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgspec

from closedloop.schemas.decode import dead_letter, raw_in_line
from closedloop.streams.engine.envelopes import Refused, publishable
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name

__all__ = ["ProduceError", "produce", "unacknowledged"]


def produce(lines: Iterator[bytes], settings: KafkaSettings, out: IO[str]) -> dict[str, int]:
    """Send each envelope's value to its topic, keyed; a line without a topic, or holding a
    raw identifier, is dead-lettered."""
    from kafka import KafkaProducer

    producer = KafkaProducer(linger_ms=20, acks="all", **settings.kafka_python())
    counts: dict[str, int] = {}
    futures: list[Any] = []
    try:
        for number, line in enumerate(lines, start=1):
            record = publishable(line)
            if record is None:
                continue
            if not isinstance(record, Refused) and (raw := raw_in_line(line)) is not None:
                record = Refused(raw, record.topic)
            if isinstance(record, Refused):
                origin = None if record.topic is None else topic_name(settings.prefix,
                                                                       record.topic)
                letter = dead_letter(record.rejection, line.rstrip(b"\r\n"), topic=origin,
                                     line=number)
                futures.append(producer.send(topic_name(settings.prefix, "deadletter"),
                                             value=msgspec.json.encode(letter)))
                counts["deadletter"] = counts.get("deadletter", 0) + 1
                continue
            futures.append(producer.send(topic_name(settings.prefix, record.topic),
                                         key=record.key, value=record.value))
            counts[record.topic] = counts.get(record.topic, 0) + 1
        producer.flush()
        failed = unacknowledged(futures)
        if failed:
            raise ProduceError(f"{failed} record(s) were not acknowledged by the broker")
    finally:
        producer.close()
    print("produced " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=out)
    return counts


def unacknowledged(futures: list[Any]) -> int:
    """How many sends the broker did not acknowledge (each waited for): a lost record is an
    error, never silent."""
    failed = 0
    for future in futures:
        try:
            future.get(timeout=60)
        except Exception:  # counted and reported as a whole by the caller
            failed += 1
    return failed


class ProduceError(RuntimeError):
    """Some records did not reach Kafka."""
