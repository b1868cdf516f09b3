"""The deadline index: which keys have a deadline due, without scanning any table.

At most one live entry per key (coalesced): a key is indexed again only when its earliest
deadline moves earlier; an entry whose due no longer matches is skipped when it comes up, and
the stage re-checks the key's state anyway. Entries are grouped by due instant: a min-heap of
the distinct instants, and per instant its key (or, once several share it, a list of keys),
since a city's deadlines bunch on event-time seconds (a round's million gc deadlines fall on a
few thousand). That costs a key a list slot (8 bytes) where a (due, key) heap entry cost ~72,
and a key alone at its instant about what the entry did. Keys come out in (due, key) order, as
from a heap of pairs. Every operation is O(log n) in the number of distinct instants. The
deadlines themselves live in the keyed state (changelogged), so the index is rebuilt from the
table after a restart.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from closedloop.agents.requirements import next_due
from closedloop.agents.state import Keyed
from closedloop.streams.engine.tight import tightened

__all__ = ["NEVER", "DeadlineIndex"]

NEVER: Final = 2**63  # later than any instant: the earliest due of an empty index


class DeadlineIndex:
    __slots__ = ("_at", "_heap", "_live", "earliest")

    def __init__(self) -> None:
        self._heap: list[int] = []  # the instants of _at
        self._at: dict[int, str | list[str]] = {}  # instant -> its keys (maybe stale ones)
        self._live: dict[str, int] = {}  # key -> the due it is indexed at
        # The heap's first due (maybe stale), or NEVER: an attribute, not a call, because
        # a driver asks every stage's index after every event and nearly always hears no.
        self.earliest = NEVER

    def __len__(self) -> int:
        """Keys with a deadline (not entries, which may include stale ones)."""
        return len(self._live)

    def schedule(self, key: str, due: int | None) -> None:
        """Make sure ``key`` is woken at or before ``due``."""
        if due is None:
            return
        live = self._live.get(key)
        if live is not None and live <= due:
            return
        self._live[key] = due
        keys = self._at.get(due)
        if keys is None:
            self._at[due] = key
            heapq.heappush(self._heap, due)
            if due < self.earliest:
                self.earliest = due
        elif isinstance(keys, str):
            self._at[due] = [keys, key]
        else:
            keys.append(key)

    def compact(self) -> None:
        """Copy the key and instant tables into tight ones if the keys and instants that
        came and went left them sparse (the worker calls it once per batch)."""
        self._live = tightened(self._live)
        self._at = tightened(self._at)

    def has_due(self, clock: int) -> bool:
        """Cheap test before :meth:`pop_due` (may be true for a stale entry)."""
        return self.earliest <= clock

    def pop_due(self, clock: int) -> list[str]:
        """Remove and return, earliest first, each key whose indexed deadline is at or before
        ``clock`` (a list: every caller took them all before firing any, and a generator
        cost a frame and a resumption per key)."""
        heap, at, live = self._heap, self._at, self._live
        keys: list[str] = []
        while heap and heap[0] <= clock:
            due = heapq.heappop(heap)
            found = at.pop(due)
            for key in (found,) if isinstance(found, str) else sorted(found):
                if live.get(key) == due:  # not stale, nor a repeat of one taken
                    del live[key]
                    keys.append(key)
        self.earliest = heap[0] if heap else NEVER
        return keys

    def rebuild(self, items: Iterable[tuple[str, Keyed]]) -> None:
        """Recreate the index from keyed state, e.g. when partitions are assigned: what
        :meth:`schedule` would make of each, built at once (a restore brings a million)."""
        live: dict[str, int] = {}
        for key, state in items:
            due = next_due(state)
            if due is not None and live.get(key, due) >= due:
                live[key] = due
        at: dict[int, str | list[str]] = {}
        for key, due in live.items():
            keys = at.get(due)
            if keys is None:
                at[due] = key
            elif isinstance(keys, str):
                at[due] = [keys, key]
            else:
                keys.append(key)
        heap = list(at)
        heapq.heapify(heap)
        self._heap, self._at, self._live = heap, at, live
        self.earliest = heap[0] if heap else NEVER
