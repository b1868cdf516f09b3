"""When each record of the simulated city is entered (contract v1.2 §1, receipt per record).

With ``simulate --receipts`` every line carries ``received_at``: the instant the platform
received it, which is where the line sits in the file (the file is in arrival order). Most
sources enter a record as it happens (transport noise aside); three have habits of their own,
so that the data-entry rules (contract v1.2 §4) have late sources and a silent lab to find:

- **the noon site**: the first sampling site of the first district types its swabs in at
  noon, the first noon at or after each collection (a swab of the afternoon waits for the
  next day's noon), in one batch of about ten minutes;
- **the stalled lab**: the city's last lab uploads nothing from 12:00 to 16:00 local on the
  second day (the first, in a one-day city), then everything it held back at once, so its
  tubes wait unreported as the engine sees them;
- **the night worker**: grid worker 01 of the first district enters the day's records
  between 22:00 and 23:30 (a record made after 22:00, half an hour or so later).

A habit only ever moves a line later. It draws from its own ``random.Random`` (seeded from
the city's seed), so a city with receipts makes the same events, noise and bad lines as the
same city without: only the habits' lines move, and every line says when it arrived.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from closedloop.streams.sim.city import City

__all__ = ["STALL_HOURS", "Habits"]

HOUR: Final = 3600
MINUTE: Final = 60
DAY: Final = 86400
NOON: Final = 12 * HOUR
STALL_HOURS: Final = (12, 16)  # local hours of the stalled lab's silence
NIGHT: Final = 22 * HOUR  # the night worker starts typing
_BATCH: Final = 10 * MINUTE  # how long a batch of entries takes to upload


class Habits:
    """The entry habits of one simulated city's sources: where each line arrives."""

    def __init__(self, rng: random.Random, city: City, days: int, tally: Counter[str]) -> None:
        self.rng = rng
        self.tally = tally
        self.midnight = city.clock.midnight
        first = city.sites[0].district
        self.site = city.sites[city.site_index[first][0]].site_id
        self.lab = city.labs[-1]
        self.worker = f"gw:{first}-01"
        stall_day = 1 if days > 1 else 0
        self.stall = (city.clock.day_start(stall_day) + STALL_HOURS[0] * HOUR,
                      city.clock.day_start(stall_day) + STALL_HOURS[1] * HOUR)

    def arrival(self, t: int, topic: str, value: dict[str, Any], at: int) -> int:
        """When a record of ``topic`` that happened at ``t`` and would arrive at ``at``
        (transport noise included) reaches the platform, its source's habit considered."""
        if topic == "sampling" and value.get("site_id") == self.site:
            noon = self._local_day(t) + NOON
            if noon < t:
                noon += DAY
            return self._later(at, noon + self.rng.randint(0, _BATCH), "noon_site")
        if topic == "lab" and value.get("lab_id") == self.lab:
            begins, ends = self.stall
            if begins <= at < ends:  # nothing is uploaded while it stalls
                return self._later(at, ends + self.rng.randint(0, _BATCH), "stalled_lab")
            return at
        if topic == "followup" and value.get("worker_id") == self.worker:
            night = self._local_day(t) + NIGHT
            entered = (night + self.rng.randint(0, 90 * MINUTE) if t < night
                       else t + self.rng.randint(5 * MINUTE, 45 * MINUTE))
            return self._later(at, entered, "night_worker")
        return at

    def _local_day(self, t: int) -> int:
        return t - (t - self.midnight) % DAY

    def _later(self, at: int, entered: int, habit: str) -> int:
        self.tally[f"receipts:{habit}"] += 1
        return max(at, entered)
