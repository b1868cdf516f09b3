"""``closedloop produce FILE|-``: publish a replay file's events to their input topics.

Each envelope goes to its topic with the contract's key (kafka-python's synchronous client);
a line that is no envelope of an input topic, or that holds a raw identifier anywhere
(CONTRACT.md §2: none may reach a topic, and an input topic keeps what it is given, a
compacted one for ever), goes to the dead letters, redacted. Only input topics are written:
moving an event-mode worker's clock is ``closedloop clock --until T``.

*v1.2* Every record carries the ``received_at`` header (CONTRACT.md §1): the envelope's
``received_at``, or ``none`` for a line without one (``streams/app/produce.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from closedloop.streams.app.produce import ProduceError, produce
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics

__all__ = ["add_parser", "run"]


def _lines(source: str) -> Iterator[bytes]:
    if source == "-":
        yield from sys.stdin.buffer
        return
    with open(source, "rb") as handle:
        yield from handle


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
