"""Publishing replay lines to their input topics, keyed as the contract says (what
``closedloop produce`` and the worker benchmarks send); a line that is no envelope of an input
topic, or that holds a raw identifier anywhere (CONTRACT.md §2: none may reach a topic, and an
input topic keeps what it is given, a compacted one for ever), goes to the dead letters,
redacted.

*v1.2* Every record carries the ``received_at`` header (CONTRACT.md §1): the envelope's
``received_at``, or ``none`` for a line without one, so that the worker measures the entry
lag from the line's own receipt and never from the time it was sent. The record's timestamp
stays the time of sending, so that the topics' retention by time is unaffected. A line whose
``received_at`` is no instant with an offset goes to the dead letters, as replay rejects it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgspec

from closedloop.schemas.decode import (
    RECEIVED_AT_HEADER,
    Rejection,
    dead_letter,
    envelope_receipt,
    header_value,
    raw_in_line,
)
from closedloop.streams.engine.envelopes import Publishable, Refused, publishable
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name

__all__ = ["ProduceError", "produce", "to_send", "unacknowledged"]


def to_send(line: bytes) -> tuple[Publishable, list[tuple[str, bytes]]] | Refused | None:
    """The record a replay line makes with its headers, why it makes none (a dead letter),
    or None for a blank line."""
    record = publishable(line)
    if record is None or isinstance(record, Refused):
        return record
    raw = raw_in_line(line)
    if raw is not None:
        return Refused(raw, record.topic)
    receipt = envelope_receipt(line)
    if isinstance(receipt, Rejection):
        return Refused(receipt, record.topic)
    return record, [(RECEIVED_AT_HEADER, header_value(receipt))]


def produce(lines: Iterator[bytes], settings: KafkaSettings, out: IO[str]) -> dict[str, int]:
    """Send each envelope's value to its topic, keyed, with its ``received_at`` header; a
    line without a topic, holding a raw identifier, or with a malformed ``received_at`` is
    dead-lettered."""
    from kafka import KafkaProducer

    producer = KafkaProducer(linger_ms=20, acks="all", **settings.kafka_python())
    counts: dict[str, int] = {}
    futures: list[Any] = []
    try:
        for number, line in enumerate(lines, start=1):
            sending = to_send(line)
            if sending is None:
                continue
            if isinstance(sending, Refused):
                origin = None if sending.topic is None else topic_name(settings.prefix,
                                                                        sending.topic)
                letter = dead_letter(sending.rejection, line.rstrip(b"\r\n"), topic=origin,
                                     line=number)
                futures.append(producer.send(topic_name(settings.prefix, "deadletter"),
                                             value=msgspec.json.encode(letter)))
                counts["deadletter"] = counts.get("deadletter", 0) + 1
                continue
            publish, headers = sending
            futures.append(producer.send(topic_name(settings.prefix, publish.topic),
                                         key=publish.key, value=publish.value,
                                         headers=headers))
            counts[publish.topic] = counts.get(publish.topic, 0) + 1
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
