"""Command-line Kafka tools on kafka-python's synchronous clients: ``produce`` and ``alerts``.

``closedloop produce FILE|- [--until T]`` publishes a replay file's envelopes to their topics
with the contract's keys, and with ``--until`` then sends a tick at T to every partition of
the tube and person stages (event mode). ``closedloop alerts tail`` lets operators watch the
alert topic, filtered by kind or district.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import orjson

from closedloop.schemas.decode import Rejection, dead_letter
from closedloop.schemas.events import KEY_FIELD
from closedloop.streams.replay import parse_instant
from closedloop.streams.settings import KafkaSettings
from closedloop.streams.topics import topic_name

__all__ = ["add_alerts_parser", "add_parser", "run", "run_alerts"]


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


def produce(
    lines: Iterator[bytes], settings: KafkaSettings, until: int | None, out: IO[str]
) -> dict[str, int]:
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
        if until is not None:
            for name, inputs in (("tube-ticks", ("sampling", "lab", "action")),
                                 ("person-tests", ("travel", "followup", "cohort", "action"))):
                # The tick waits, in each stage partition, until the inputs sent before it
                # are applied: Kafka may deliver one topic well ahead of another.
                tick = orjson.dumps({"type": "tick", "at": until,
                                     "after": _end_offsets(settings, inputs)})
                address = topic_name(settings.prefix, name)
                for partition in sorted(producer.partitions_for(address)):
                    futures.append(producer.send(address, value=tick, partition=partition))
            producer.flush()
            _check(futures)
            counts["ticks"] = 2 * settings.partitions
    finally:
        producer.close()
    print("produced " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=out)
    return counts


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
    parser.add_argument("--until", metavar="T",
                        help="then tick every stage partition to T (RFC 3339 with offset)")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def run(args: argparse.Namespace) -> int:
    try:
        until = None if args.until is None else parse_instant(args.until)
    except ValueError as exc:
        print(f"closedloop produce: {exc}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix)
    try:
        produce(_lines(args.file), settings, until, sys.stderr)
    except OSError as exc:
        print(f"closedloop produce: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except ProduceError as exc:
        print(f"closedloop produce: {exc}", file=sys.stderr)
        return 1
    return 0


def add_alerts_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.action_cmd import add_action_parsers
    from closedloop.streams.ledger.alerts_list import add_list_parser  # ledger (issue 5)

    parser.description = ("Watch the alert topic (CONTRACT.md §5), list alerts from the ledger, "
                          "or acknowledge/resolve one (which stops its escalation).")
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    add_list_parser(sub)  # ledger (issue 5): `alerts list`
    add_action_parsers(sub)  # `alerts ack|resolve`
    tail = sub.add_parser("tail", help="print alerts as they arrive")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument("--kind", action="append", help="only this kind (repeatable)")
    tail.add_argument("--district", action="append", help="only this district (repeatable)")
    tail.add_argument("--idle-exit", type=float, metavar="SECONDS",
                      help="exit after this many seconds without a new alert")
    tail.add_argument("--json", action="store_true", help="one JSON object a line")
    tail.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def _matches(alert: dict[str, Any], args: argparse.Namespace) -> bool:
    return (not args.kind or alert.get("kind") in args.kind) and (
        not args.district or alert.get("district") in args.district
    )


def run_alerts(args: argparse.Namespace) -> int:
    if args.alerts_command == "list":  # ledger (issue 5)
        from closedloop.streams.ledger.alerts_list import run_list

        return run_list(args)
    if args.alerts_command in ("ack", "resolve"):
        from closedloop.streams.action_cmd import run_action

        return run_action(args)
    from kafka import KafkaConsumer, TopicPartition

    settings = KafkaSettings.from_env(prefix=args.prefix)
    address = topic_name(settings.prefix, "alerts")
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_python())
    try:
        partitions = [TopicPartition(address, p) for p in consumer.partitions_for_topic(address)
                      or ()]
        if not partitions:
            print(f"closedloop alerts: topic {address} does not exist", file=sys.stderr)
            return 1
        consumer.assign(partitions)
        if args.from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        seen: set[str] = set()  # at-least-once upstream: de-duplicate by alert_id
        last = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    alert = orjson.loads(record.value)
                    if alert["alert_id"] in seen or not _matches(alert, args):
                        continue
                    seen.add(alert["alert_id"])
                    last = time.monotonic()
                    if args.json:
                        sys.stdout.write(record.value.decode() + "\n")
                    else:
                        sys.stdout.write(
                            f"{alert['due_at']}  {alert['kind']:<17} {alert['subject']:<24} "
                            f"{alert.get('district') or '-'}\n"
                        )
                    sys.stdout.flush()
            if args.idle_exit is not None and time.monotonic() - last >= args.idle_exit:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
