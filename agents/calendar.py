"""Local calendar arithmetic in the policy's time zone, on epoch seconds.

Days, test days and cut-offs are local (CONTRACT.md §1). Results are cached per date because
the hot path asks the same few days millions of times; RFC 3339 texts per instant, because
a round's close raises thousands of alerts at one instant (one string kept for all of them,
not two per alert: ~20 bytes a person of a round). Instants beyond what ``datetime`` can
hold are clamped to its range (the decoder refuses implausible times; this is the backstop
that keeps any instant from raising).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["Calendar"]

# Epoch seconds of 0002-01-01 and 9998-12-31 UTC: a local date a day either side still exists.
_MIN_EPOCH = -62104060800
_MAX_EPOCH = 253370678400


def _clamped(epoch: int) -> int:
    return min(max(epoch, _MIN_EPOCH), _MAX_EPOCH)


class Calendar:
    """Epoch seconds <-> local dates for one zone and one daily cut-off."""

    def __init__(self, zone: ZoneInfo, cutoff_seconds: int) -> None:
        self.zone = zone
        self.cutoff = time(cutoff_seconds // 3600, cutoff_seconds % 3600 // 60)
        self.local_date = lru_cache(maxsize=4096)(self._local_date)
        self.day_start = lru_cache(maxsize=4096)(self._day_start)
        self.cutoff_at = lru_cache(maxsize=4096)(self._cutoff_at)
        self.iso = lru_cache(maxsize=1024)(self._iso)

    def _local_date(self, epoch: int) -> date:
        return datetime.fromtimestamp(_clamped(epoch), self.zone).date()

    def _day_start(self, day: date) -> int:
        """Epoch of local midnight opening ``day``."""
        return int(datetime.combine(day, time(0), self.zone).timestamp())

    def _cutoff_at(self, day: date) -> int:
        """Epoch of ``day``'s daily cut-off (22:00 local by default)."""
        return int(datetime.combine(day, self.cutoff, self.zone).timestamp())

    def date_of(self, epoch: int) -> date:
        # Cache on the hour so that nearby instants share one entry.
        hour = epoch - epoch % 3600
        day = self.local_date(hour)
        start = self.day_start(day)
        if epoch < start:
            return day - timedelta(days=1)
        if epoch >= self.day_start(day + timedelta(days=1)):
            return day + timedelta(days=1)
        return day

    def report_date(self, epoch: int) -> date:
        """The report day whose window (previous cut-off, this cut-off] contains ``epoch``."""
        day = self.date_of(epoch)
        return day if epoch <= self.cutoff_at(day) else day + timedelta(days=1)

    def _iso(self, epoch: int) -> str:
        """RFC 3339 in the local offset, e.g. ``2022-09-06T11:30:00+08:00``."""
        return datetime.fromtimestamp(_clamped(epoch), self.zone).isoformat()
