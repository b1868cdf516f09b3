"""Whether the worker reaches its Kafka cluster: what ``/ready``, a metric and the loop ask.

A probe asks the cluster for its metadata every :data:`PROBE_S` seconds. Any broker may
answer: with one of three brokers down the cluster is still reachable (its partitions move to
the others), with all of them down (or this worker cut off) it is not. While it is not, the
worker says so once in its log and in ``/ready`` (not ready, with the reason) and
``closedloop_kafka_unreachable_seconds``, starts no transaction (the wall clock's ticks wait),
and goes on by itself when the cluster answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["PROBE_S", "PROBE_TIMEOUT_S", "Reachability", "describe", "watch"]

log = logging.getLogger("closedloop.worker")

PROBE_S: Final = 2.0
"""Seconds between two probes."""
PROBE_TIMEOUT_S: Final = 5.0
"""A probe not answered within this long failed (a broker cut off by the network never
refuses a connection: it does not answer)."""


class Reachability:
    """The probes' verdict: up until a probe fails, down until one succeeds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_answer = clock()  # the worker connected before it probes
        self.cause = ""
        self._up = asyncio.Event()
        self._up.set()

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def answered(self) -> None:
        now = self.clock()
        if not self.up:
            log.warning("closedloop: Kafka answers again after %.0f s; going on",
                        now - self.last_answer)
            self._up.set()
        self.last_answer = now

    def failed(self, cause: str) -> None:
        self.cause = cause
        if self.up:
            log.warning("closedloop: Kafka does not answer (%s); not ready until it does",
                        cause)
            self._up.clear()

    def unreachable_seconds(self) -> float:
        """Seconds since the cluster last answered while it does not answer now; else 0."""
        return 0.0 if self.up else self.clock() - self.last_answer

    def reason(self) -> str | None:
        """Why the worker is not ready because of its cluster, or None when it answers."""
        if self.up:
            return None
        return f"Kafka unreachable for {self.unreachable_seconds():.0f} s: {self.cause}"

    async def wait_up(self) -> None:
        await self._up.wait()


async def watch(ask: Callable[[], Awaitable[object]], reach: Reachability,
                stopping: Callable[[], bool], every: float = PROBE_S,
                timeout: float = PROBE_TIMEOUT_S) -> None:
    """Probe with ``ask`` (a metadata request) every ``every`` seconds until ``stopping()``."""
    while not stopping():
        try:
            await asyncio.wait_for(ask(), timeout)
        except Exception as exc:  # the client's errors differ by version: any failure counts
            if stopping():  # the client closed under the probe: no news of the cluster
                return
            reach.failed(f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError)
                         else describe(exc))
        else:
            reach.answered()
        await asyncio.sleep(every)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, once (aiokafka's errors name their type already)."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name
