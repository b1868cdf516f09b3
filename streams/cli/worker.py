"""``closedloop worker``: run the stream processor on Kafka ($CLOSEDLOOP_KAFKA).

Declares the topics it needs, builds the Faust app (:mod:`closedloop.streams.kafka.app`),
whose consume loop applies the input in batches, one Kafka transaction each, and runs it
until SIGTERM. One worker per data directory (it keeps the worker's transactional id); more
workers in one consumer group share the partitions, each restoring the state of those it
takes over from the stages' changelogs.
"""

from __future__ import annotations

import argparse
import os
import sys

from closedloop.schemas.policy import PolicyError, load_policy
from closedloop.streams.kafka.app import build_app, serve
from closedloop.streams.kafka.membership import lock_data_dir
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--clock", choices=("wall", "event"), default="wall",
                        help="wall: ticks every second (live); event: event time only")
    parser.add_argument("--policy", metavar="FILE", help="TOML policy (default: the contract's)")
    parser.add_argument("--app-id", default=os.environ.get("CLOSEDLOOP_APP_ID", "closedloop"),
                        help="consumer group, and prefix of the changelog topics and the "
                        "transactional id (default closedloop)")
    parser.add_argument("--data-dir", default=os.environ.get("CLOSEDLOOP_DATA_DIR",
                                                             ".cache/worker"),
                        help="this worker's data directory, one per worker: it keeps the "
                        "transactional id, so a restart on it aborts what a crash left open "
                        "at once (default .cache/worker)")
    parser.add_argument("--web-port", type=_port,  # argparse converts the default too,
                        default=os.environ.get("CLOSEDLOOP_WEB_PORT", "6066"),  # when used
                        help="HTTP port for /health, /ready and /metrics (default "
                        "$CLOSEDLOOP_WEB_PORT, else 6066)")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")
    parser.add_argument("--partitions", type=int, help="partitions (default 12)")
    parser.add_argument("--loglevel", default="warning", metavar="LEVEL",
                        help="how much the worker logs: debug, info, warning (default) or "
                        "error")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} (or CLOSEDLOOP_WEB_PORT) is not a port "
                                         "number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"closedloop worker: {exc}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix, partitions=args.partitions)
    created = declare_topics(settings)
    if created:
        print(f"closedloop worker: created {len(created)} topics", file=sys.stderr)
    os.makedirs(args.data_dir, exist_ok=True)
    with lock_data_dir(args.data_dir):  # held while the worker runs (membership.py)
        app = build_app(settings, policy, clock=args.clock, app_id=args.app_id,
                        data_dir=args.data_dir, web_port=args.web_port)
        serve(app, args.loglevel)
    return 0
