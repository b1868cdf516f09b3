"""Log at most one line per cause per window: a broker outage must not flood the worker's log.

While a broker is down, aiokafka logs every failed connection, metadata refresh, fetch and
coordinator lookup: thousands of lines a second, the same few sentences over and over (an
hour's outage would write gigabytes). :class:`OncePerWindow` lets the first record of each
cause through, holds back the repeats for ``window`` seconds, and says how many it held back
on the next line of that cause it lets through.

A cause is the logger and the record's message template (``record.msg`` before its
arguments are filled in): "Unable connect to node with id %s: %s" is one cause whatever the
node and the error. Limited are warnings and errors, and the Kafka clients' INFO lines
(a coordinator "discovered" ten times a second while the broker loads its state): the
worker's own INFO lines, which an operator asks for with ``--loglevel info``, all pass.
A traceback the Kafka clients attach to a line (a connection closed under a request) is cut
to its last exception, on that line: it is a fault of the network, not of the code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from closedloop.streams.kafka.reachability import describe

__all__ = ["WINDOW_S", "OncePerWindow", "quieten"]

WINDOW_S: Final = 10.0
"""At most one line per cause in this many seconds."""
CLIENTS: Final = frozenset({"aiokafka", "kafka"})
"""The loggers (and their children) of the Kafka clients."""
MAX_CAUSES: Final = 10_000
"""Causes remembered before those quiet for a window are forgotten."""


class OncePerWindow(logging.Filter):
    """A handler filter: the first record of a cause in each window passes, the rest wait."""

    def __init__(self, window: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.window, self.clock = window, clock
        # cause -> (when its last line was let through, how many held back since)
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        client = record.name.split(".", 1)[0] in CLIENTS
        if record.levelno < logging.WARNING and not (client and record.levelno >= logging.INFO):
            return True
        # One verdict per record, however many handlers this filter sits on.
        verdict = getattr(record, "_once_per_window", None)
        if verdict is None:
            verdict = self._judge(record)
            record._once_per_window = verdict
            if verdict and client and record.exc_info and record.exc_info[1] is not None:
                record.msg = f"{record.msg} ({describe(record.exc_info[1])})"
                record.exc_info, record.exc_text = None, None
        return bool(verdict)

    def _judge(self, record: logging.LogRecord) -> bool:
        cause = (record.name, str(record.msg))
        now = self.clock()
        if len(self.seen) >= MAX_CAUSES:  # messages formatted before logging: each is new
            self.seen = {c: v for c, v in self.seen.items() if now - v[0] < self.window}
        last = self.seen.get(cause)
        if last is None:
            self.seen[cause] = (now, 0)
            return True
        since, held = last
        if now - since < self.window:
            self.seen[cause] = (since, held + 1)
            return False
        self.seen[cause] = (now, 0)
        if held:
            # Said on the line itself, so the count travels with whatever formats it.
            record.msg = (f"{record.msg} [{held} more like this in the last "
                          f"{now - since:.0f} s held back]")
        return True


def quieten(window: float = WINDOW_S) -> OncePerWindow:
    """Put one :class:`OncePerWindow` on every handler of the root logger (where the
    worker's logging configuration writes every record); returns it."""
    limit = OncePerWindow(window)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OncePerWindow) for f in handler.filters):
            handler.addFilter(limit)
    return limit
