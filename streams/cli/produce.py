"""``closedloop produce FILE|-``: publish a replay file's events to their input topics.

Each envelope goes to its topic with the contract's key (kafka-python's synchronous client);
a line that is no envelope of an input topic goes to the dead letters. Only input topics are
written: moving an event-mode worker's clock is ``closedloop clock --until T``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import orjson

from closedloop.schemas.decode import Rejection, dead_letter
from closedloop.schemas.events import KEY_FIELD
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics, topic_name

__all__ = ["add_parser", "run"]


class _Envelope(msgspec.Struct):
    topic: str
    value: msgspec.Raw


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


def _lines(source: str) -> Iterator[bytes]:
    if source == "-":
        yield from sys.stdin.buffer
        return
    with open(source, "rb") as handle:
        yield from handle


def _key_of(topic: str, value: bytes) -> bytes | None:
    field = KEY_FIELD.get(topic)
    if field is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    key = parsed.get(field) if isinstance(parsed, dict) else None
    return key.encode() if isinstance(key, str) else None


def produce(lines: Iterator[bytes], settings: KafkaSettings, out: IO[str]) -> dict[str, int]:
    """Send each envelope's value to its topic, keyed; a line without a topic is dead-lettered."""
    from kafka import KafkaProducer

    producer = KafkaProducer(linger_ms=20, acks="all", **settings.kafka_python())
    counts: dict[str, int] = {}
    futures: list[Any] = []
    try:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                envelope = _decode_envelope(line)
            except (msgspec.MsgspecError, ValueError):
                envelope = None
            if envelope is None or envelope.topic not in KEY_FIELD:
                letter = dead_letter(
                    Rejection("bad_envelope", "not a replay envelope with a known input topic"),
                    line, line=number,
                )
                futures.append(producer.send(topic_name(settings.prefix, "deadletter"),
                                             value=msgspec.json.encode(letter)))
                counts["deadletter"] = counts.get("deadletter", 0) + 1
                continue
            value = bytes(envelope.value)
            key = _key_of(envelope.topic, value)
            if key is None and envelope.topic in COMPACTED_INPUTS:
                # A compacted topic refuses keyless records, and the broker would fail the
                # whole batch with it: without its key the event is bad input anyway.
                letter = dead_letter(
                    Rejection("missing_field", f"{KEY_FIELD[envelope.topic]}: the message "
                              "key is required"),
                    line, topic=topic_name(settings.prefix, envelope.topic), line=number,
                )
                futures.append(producer.send(topic_name(settings.prefix, "deadletter"),
                                             value=msgspec.json.encode(letter)))
                counts["deadletter"] = counts.get("deadletter", 0) + 1
                continue
            futures.append(producer.send(
                topic_name(settings.prefix, envelope.topic), key=key, value=value))
            counts[envelope.topic] = counts.get(envelope.topic, 0) + 1
        producer.flush()
        _check(futures)
    finally:
        producer.close()
    print("produced " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=out)
    return counts


COMPACTED_INPUTS = frozenset({"cohort"})


def _check(futures: list[Any]) -> None:
    """Every send must have been acknowledged: a lost input is an error, never silent."""
    failed = 0
    for future in futures:
        try:
            future.get(timeout=60)
        except Exception:  # counted and reported as a whole below
            failed += 1
    futures.clear()
    if failed:
        raise ProduceError(f"{failed} record(s) were not acknowledged by the broker")


class ProduceError(RuntimeError):
    """Some records did not reach Kafka."""


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("file", metavar="FILE|-", help="replay JSON Lines; - reads stdin")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def run(args: argparse.Namespace) -> int:
    settings = KafkaSettings.from_env(prefix=args.prefix)
    created = declare_topics(settings)
    if created:
        print(f"closedloop produce: created {len(created)} topics "
              f"({settings.partitions} partitions each)", file=sys.stderr)
    try:
        produce(_lines(args.file), settings, sys.stderr)
    except OSError as exc:
        print(f"closedloop produce: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except ProduceError as exc:
        print(f"closedloop produce: {exc}", file=sys.stderr)
        return 1
    return 0
