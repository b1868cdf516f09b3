"""``event_id`` de-duplication (CONTRACT.md §3) with bounded retention.

The key is (topic name, event_id). An id is remembered until the clock is
``dedup_retention`` past the event's time, so memory is bounded by the event rate times the
retention, not by the length of the stream.
"""

from __future__ import annotations

import heapq

__all__ = ["Dedup"]


class Dedup:
    __slots__ = ("_expiry", "_seen", "retention")

    def __init__(self, retention: int) -> None:
        self.retention = retention
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[int, str, str]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, topic: str, event_id: str, event_time: int, clock: int) -> bool:
        """True if (topic, event_id) was seen before; otherwise remember it."""
        horizon = clock - self.retention
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            _, old_topic, old_id = heapq.heappop(expiry)
            self._seen.discard((old_topic, old_id))
        key = (topic, event_id)
        if key in self._seen:
            return True
        self._seen.add(key)
        heapq.heappush(expiry, (event_time, topic, event_id))
        return False
