"""Record the engine's outputs in the SQL ledger: ``closedloop sink``.

Consumes the alerts, daily-report, round-report, person-status and deadletter topics as the
consumer group ``{prefix}-ledger-sink`` and writes them idempotently, one transaction per
batch, committing offsets after each. It also reads ``action`` (an operator's ack/resolve
moves the alert's row along its lifecycle) and ``escalations`` (the row's escalation level).
Run as many as the topics have partitions; stop with Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from closedloop.streams.ledger import database_url
from closedloop.streams.ledger.options import add_url

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_url(parser)
    parser.add_argument("--from-beginning", action="store_true",
                        help="rewind to the oldest records kept (rows already written stay)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit after this many seconds without a record")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from closedloop.streams.kafka.settings import KafkaSettings
    from closedloop.streams.ledger.engine import open_engine
    from closedloop.streams.ledger.errors import ledger_error
    from closedloop.streams.ledger.migrate import ensure_schema
    from closedloop.streams.ledger.sink import consume, summary

    settings = KafkaSettings.from_env(prefix=args.prefix)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        engine = open_engine(database_url(args.url))
        try:
            ensure_schema(engine)
            totals = consume(engine, settings, from_beginning=args.from_beginning,
                             idle_exit=args.idle_exit, stop=stop)
        finally:
            engine.dispose()
    except KafkaError as exc:
        print(f"closedloop sink: Kafka at {settings.bootstrap}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        print(f"closedloop sink: {message}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary(totals.items()), file=sys.stderr)
    return 0
