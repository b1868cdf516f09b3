"""A Faust agent that only decodes: the yardstick ``closedloop bench worker`` also runs.

``python -m closedloop.streams.bench.faust_decode --prefix P --records N --app-id ID``
starts a Faust worker whose one agent reads every input topic of the prefix and parses each
record with orjson, nothing else. Once it has read ``N`` records it prints one JSON line,
``{"records": N, "cpu_seconds": S}`` (the process's CPU from its partitions' assignment to
its last record: start-up excluded, fetching counted, as for the worker), and exits. What
a Faust agent costs before any rule runs is what the worker is measured against.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import orjson

from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name

__all__ = ["main"]


def _credentials(settings: KafkaSettings) -> Any:
    """Faust's credentials for the broker the settings name (None: plaintext)."""
    import ssl

    import faust

    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(ssl.create_default_context(cafile=settings.ca_file))
    if not settings.security_protocol.startswith("SASL"):
        return None
    context = ssl.create_default_context(cafile=settings.ca_file) \
        if settings.security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=settings.username, password=settings.password(),
                                 mechanism=settings.sasl_mechanism, ssl_context=context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faust_decode", description=__doc__)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--web-port", type=int, default=0)
    args = parser.parse_args(argv)

    import faust
    from faust.worker import Worker

    settings = KafkaSettings.from_env(prefix=args.prefix)
    app = faust.App(
        args.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap.split(",")],
        broker_credentials=_credentials(settings), store="memory://", datadir=args.data_dir,
        topic_partitions=settings.partitions, consumer_auto_offset_reset="earliest",
        web_port=args.web_port, web_bind="127.0.0.1", topic_allow_declare=False,
    )
    inputs = app.topic(*(topic_name(args.prefix, name) for name in TOPOLOGY.inputs),
                       key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    seen = {"records": 0}
    started: list[float] = []

    async def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if args and args[0] and not started:  # args[0]: the set of partitions assigned
            started.append(time.process_time())

    app.on_partitions_assigned.connect(assigned)

    @app.agent(inputs, name="decode-only")
    async def decode(stream: Any) -> None:
        loads, error = orjson.loads, orjson.JSONDecodeError
        async for value in stream:
            try:  # noqa: SIM105 - suppress() would add a context manager per record
                loads(value)
            except error:
                pass  # the simulated malformed lines
            seen["records"] += 1
            if seen["records"] >= args.records:
                cpu = time.process_time() - started[0]
                sys.stdout.write(orjson.dumps({"records": seen["records"],
                                               "cpu_seconds": cpu}).decode() + "\n")
                sys.stdout.flush()
                os._exit(0)

    worker = Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
