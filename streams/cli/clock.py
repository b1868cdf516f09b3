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

from closedloop.schemas.instants import parse_instant
from closedloop.streams.app.clock import ClockError, advance_clock
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics

__all__ = ["add_parser", "run"]


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
