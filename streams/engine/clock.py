"""The engine clock: an event-time watermark (CONTRACT.md §1).

clock = the largest ``occurred_at`` seen minus ``allowed_lateness``; in live mode the wall
clock also pushes it (now - allowed_lateness); ``--until T`` finally moves it to exactly T.
It never goes backwards. The wall clock is read only here, and only when asked.
"""

from __future__ import annotations

import time

__all__ = ["MIN_EPOCH", "Watermark", "wall_now"]

MIN_EPOCH = -(2**62)


def wall_now() -> int:
    """Whole epoch seconds from the machine's clock: for live (wall) mode only."""
    return int(time.time())


class Watermark:
    """Largest event time seen, less the allowed lateness; monotonic."""

    __slots__ = ("lateness", "max_seen", "value")

    def __init__(self, lateness: int) -> None:
        self.lateness = lateness
        self.max_seen = MIN_EPOCH
        self.value = MIN_EPOCH

    def observe(self, event_time: int) -> int:
        """Take an event's time into account; returns the clock."""
        if event_time > self.max_seen:
            self.max_seen = event_time
            candidate = event_time - self.lateness
            if candidate > self.value:
                self.value = candidate
        return self.value

    def advance_to(self, instant: int) -> int:
        """Move the clock to ``instant`` (``--until``, a tick); never backwards."""
        if instant > self.value:
            self.value = instant
        return self.value
