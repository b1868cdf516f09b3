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
from closedloop.streams.ledger.options import add_ledger

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_ledger(parser)
    parser.add_argument("--from-beginning", action="store_true",
                        help="rewind to the oldest records kept (rows already written stay)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit after this many seconds without a record")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")
    parser.add_argument("--policy", metavar="FILE",
                        help="TOML policy: its catch-up window closes caught-up round_missed "
                        "alerts (default the contract's, 24 h)")


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.kafka.settings import KafkaSettings
    from closedloop.streams.ledger.engine import open_engine
    from closedloop.streams.ledger.errors import ledger_error
    from closedloop.streams.ledger.migrate import ensure_schema
    from closedloop.streams.ledger.sink import consume, summary

    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"closedloop sink: {exc}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        engine = open_engine(database_url(args.ledger))
        try:
            ensure_schema(engine)
            totals = consume(engine, settings, from_beginning=args.from_beginning,
                             idle_exit=args.idle_exit, stop=stop,
                             catchup_within=policy.catchup_within)
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
