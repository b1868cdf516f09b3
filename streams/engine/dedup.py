"""``event_id`` de-duplication (CONTRACT.md §3) with bounded retention.

The key is (topic name, event_id). An id is remembered until the clock is
``dedup_retention`` past the event's time, so memory is bounded by the event rate times the
retention, not by the length of the stream. Ids are kept in arrival order, which is event
order up to the allowed lateness, so expiry pops from the front without a heap.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Dedup"]


class Dedup:
    __slots__ = ("_order", "_seen", "retention")

    def __init__(self, retention: int) -> None:
        self.retention = retention
        self._seen: set[tuple[str, str]] = set()
        self._order: deque[tuple[int, tuple[str, str]]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, topic: str, event_id: str, event_time: int, clock: int) -> bool:
        """True if (topic, event_id) was seen before; otherwise remember it."""
        key = (topic, event_id)
        if key in self._seen:
            return True
        horizon = clock - self.retention
        order = self._order
        while order and order[0][0] < horizon:
            self._seen.discard(order.popleft()[1])
        self._seen.add(key)
        order.append((event_time, key))
        return False
