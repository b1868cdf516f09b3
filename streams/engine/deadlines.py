"""The deadline index: which keys have a deadline due, without scanning any table.

A min-heap of (due, key) per partition with at most one live entry per key (coalesced): a key
is pushed again only when its earliest deadline moves earlier; an entry whose due no longer
matches is skipped when popped, and the stage re-checks the key's state anyway. Every
operation is O(log n) in the number of open deadlines. The deadlines themselves live in the
keyed state (changelogged), so the index is rebuilt from the table after a restart.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from closedloop.agents.requirements import next_due
from closedloop.agents.state import Keyed

__all__ = ["NEVER", "DeadlineIndex"]

NEVER: Final = 2**63  # later than any instant: the earliest due of an empty index


class DeadlineIndex:
    __slots__ = ("_heap", "_live", "earliest")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._live: dict[str, int] = {}
        # The heap's first due (maybe stale), or NEVER: an attribute, not a call, because
        # a driver asks every stage's index after every event and nearly always hears no.
        self.earliest = NEVER

    def __len__(self) -> int:
        """Keys with a deadline (not heap entries, which may include stale ones)."""
        return len(self._live)

    def schedule(self, key: str, due: int | None) -> None:
        """Make sure ``key`` is woken at or before ``due``."""
        if due is None:
            return
        live = self._live.get(key)
        if live is not None and live <= due:
            return
        self._live[key] = due
        heapq.heappush(self._heap, (due, key))
        if due < self.earliest:
            self.earliest = due

    def has_due(self, clock: int) -> bool:
        """Cheap test before :meth:`pop_due` (may be true for a stale entry)."""
        return self.earliest <= clock

    def pop_due(self, clock: int) -> list[str]:
        """Remove and return, earliest first, each key whose indexed deadline is at or before
        ``clock`` (a list: every caller took them all before firing any, and a generator
        cost a frame and a resumption per key)."""
        heap, live = self._heap, self._live
        keys: list[str] = []
        while heap and heap[0][0] <= clock:
            due, key = heapq.heappop(heap)
            if live.get(key) == due:
                del live[key]
                keys.append(key)
        self.earliest = heap[0][0] if heap else NEVER
        return keys

    def rebuild(self, items: Iterable[tuple[str, Keyed]]) -> None:
        """Recreate the index from keyed state, e.g. when partitions are assigned."""
        self._heap.clear()
        self._live.clear()
        for key, state in items:
            due = next_due(state)
            if due is not None:
                self._live[key] = due
                self._heap.append((due, key))
        heapq.heapify(self._heap)
        self.earliest = self._heap[0][0] if self._heap else NEVER
