"""Watch, list and handle alerts: ``closedloop alerts list|ack|resolve|assign|tail``.

``list`` reads the ledger; ``ack``, ``resolve`` and ``assign`` handle an alert (recorded in the
ledger, or published to Kafka); ``tail`` follows the alert topic on Kafka.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.cli.alert_action import add_action_parsers
    from closedloop.streams.cli.alerts_list import add_list_parser

    parser.description = ("List alerts from the ledger, acknowledge, resolve or assign one "
                          "(which stops its escalation, except assign), or watch new alerts "
                          "as Kafka publishes them.")
    sub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    add_list_parser(sub)  # `alerts list`
    add_action_parsers(sub)  # `alerts ack|resolve`
    tail = sub.add_parser(
        "tail", help="print alerts as they arrive",
        description="Print the alerts published on the alert topic as they arrive (Kafka at "
        "$CLOSEDLOOP_KAFKA), one line each or one JSON object a line; --from-beginning "
        "replays the topic first.")
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


def run(args: argparse.Namespace) -> int:
    if args.alerts_command == "list":
        from closedloop.streams.cli.alerts_list import run_list

        return run_list(args)
    if args.alerts_command in ("ack", "resolve", "assign"):
        from closedloop.streams.cli.alert_action import run_action

        return run_action(args)
    from kafka import KafkaConsumer, TopicPartition

    settings = KafkaSettings.from_env(prefix=args.prefix)
    address = topic_name(settings.prefix, "alerts")
    # the worker writes in transactions: a crashed worker's unfinished batch is never shown
    consumer = KafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                             **settings.kafka_python())
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
