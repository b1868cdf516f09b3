"""The simulated city's supervision rounds (contract v1.2): findings, rectification, look-back.

With ``simulate --inspections`` inspection teams (督导组, one per district) visit units every
day: venues that should check scan codes, the city's sampling sites, companies and schools. A
visit finds something wanting about a third of the time; the finding's category follows the
unit's kind, its severity is mostly minor. Then, per finding (the policy's defaults: rectify
within 24 h critical, 72 h major, 168 h minor; recheck within 168 h of the rectification):

- rectified on time (most), late, or never;
- once rectified, looked back at (回头看) within two days, or never; a recheck passes, or
  fails (the unit then rectifies again on time and passes the next recheck);
- units found again in a category they were found wanting in before are repeat offenders
  (屡督屡犯), which a few days of rounds over a dozen units a district make happen by itself.

So that every outcome shows up in any city, the first district's first day begins with one of
each: a critical finding never rectified, a critical one rectified late, a major one whose
recheck fails, a minor one rectified and passed, and (the next day, or the same day in a
one-day city) the last unit found wanting again in the same category.

Records after the city's last day are not made (the future has not happened). Inspectors
enter their records on the spot: they arrive when they happen. It draws from its own
``random.Random`` (seeded from the city's seed), so a city without it keeps its bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from closedloop.streams.sim.city import City

__all__ = ["Inspections"]

HOUR: Final = 3600
MINUTE: Final = 60
DAY: Final = 86400
RECTIFY_WITHIN: Final = {"critical": DAY, "major": 3 * DAY, "minor": 7 * DAY}  # the defaults
_CATEGORIES: Final = {
    "venue": ("venue_code", "protection"),
    "site": ("protection", "roster"),
    "company": ("roster", "test_frequency"),
    "school": ("test_frequency", "venue_code"),
}
_UNITS: Final = (("venue", 6), ("company", 2), ("school", 1))  # per district, besides sites
_VISITS: Final = 4  # a team's visits a day
_FINDS: Final = 0.35  # a visit finds something wanting
_SEVERITIES: Final = (("minor", 0.55), ("major", 0.33), ("critical", 0.12))
_LATE: Final = 0.15  # of findings: rectified after the window
_NEVER: Final = 0.15  # of findings: never rectified
_NO_RECHECK: Final = 0.1  # of rectifications: nobody looks back
_FAILS: Final = 0.2  # of rechecks


@dataclass(frozen=True, slots=True)
class _Unit:
    unit_id: str
    kind: str
    district: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """What becomes of one finding (``None``: it does not happen)."""

    rectified: int | None  # seconds after the finding
    recheck: int | None  # seconds after the rectification
    fails: bool = False


class Inspections:
    """The supervision rounds of one simulated city."""

    def __init__(self, rng: random.Random, city: City, days: int, tally: Counter[str]) -> None:
        self.rng = rng
        self.tally = tally
        self.end = city.clock.day_start(days)  # nothing is made at or after the city's end
        self.units: dict[str, list[_Unit]] = {}
        for district, sites in city.site_index.items():
            units = [_Unit(city.sites[s].site_id, "site", district) for s in sites]
            units += [_Unit(f"{kind}:{district}-{n:02d}", kind, district)
                      for kind, count in _UNITS for n in range(1, count + 1)]
            self.units[district] = units
        self.first = city.sites[0].district  # the showcase's district
        self.found: dict[tuple[str, str], list[int]] = {}  # (unit, category) -> finding times
        self.repeat: tuple[_Unit, str] | None = None  # the showcase's unit found again

    def day(self, city: City, day: int) -> None:
        start = city.clock.day_start(day)
        if day == 0:
            self._showcase(city, start)
        if self.repeat is not None and (day == 1 or city.clock.day_start(day + 1) >= self.end):
            unit, category = self.repeat
            self.repeat = None
            self._finding(city, unit, start + 15 * HOUR, category, "minor", _Plan(None, None))
        for district in sorted(self.units):
            units = self.units[district]
            for _ in range(_VISITS):
                t = start + self.rng.randint(9 * HOUR, 17 * HOUR)
                unit = self.rng.choice(units)
                if self.rng.random() >= _FINDS:
                    continue
                category = self.rng.choice(_CATEGORIES[unit.kind])
                severity = self._severity()
                self._finding(city, unit, t, category, severity, self._plan(severity))

    # -- what a finding comes to -------------------------------------------------------------

    def _severity(self) -> str:
        roll = self.rng.random()
        for severity, share in _SEVERITIES:
            if roll < share:
                return severity
            roll -= share
        return "minor"

    def _plan(self, severity: str) -> _Plan:
        window = RECTIFY_WITHIN[severity]
        roll = self.rng.random()
        if roll < _NEVER:
            return _Plan(None, None)
        if roll < _NEVER + _LATE:
            rectified = window + self.rng.randint(HOUR, 12 * HOUR)
        else:
            rectified = self.rng.randint(window // 10, window * 9 // 10)
        if self.rng.random() < _NO_RECHECK:
            return _Plan(rectified, None)
        return _Plan(rectified, self.rng.randint(2 * HOUR, 2 * DAY),
                     self.rng.random() < _FAILS)

    def _showcase(self, city: City, start: int) -> None:
        """One finding of each outcome in the first district, whatever the draws."""
        units = self.units[self.first]
        showcase = (
            ("critical", _Plan(None, None)),  # never rectified
            ("critical", _Plan(DAY + 3 * HOUR, 20 * HOUR)),  # rectified late, passed
            ("major", _Plan(20 * HOUR, 6 * HOUR, fails=True)),  # rectified, recheck fails
            ("minor", _Plan(5 * HOUR, 3 * HOUR)),  # rectified on time, passed
        )
        for n, (severity, plan) in enumerate(showcase):
            unit = units[n % len(units)]
            category = _CATEGORIES[unit.kind][0]
            self._finding(city, unit, start + (9 + n) * HOUR, category, severity, plan)
            self.repeat = (unit, category)

    # -- records -------------------------------------------------------------------------------

    def _finding(self, city: City, unit: _Unit, t: int, category: str, severity: str,
                 plan: _Plan) -> None:
        if t >= self.end:
            return
        finding_id = city.next_id("fd")
        earlier = self.found.setdefault((unit.unit_id, category), [])
        if earlier:
            self.tally["city:repeat_findings"] += 1
        earlier.append(t)
        self._emit(city, unit, t, "finding", finding_id, category=category, severity=severity)
        self.tally["city:findings"] += 1
        self.tally[f"city:findings_{severity}"] += 1
        if plan.rectified is None:
            self.tally["city:never_rectified"] += 1
            return
        rectified = t + plan.rectified
        on_time = plan.rectified <= RECTIFY_WITHIN[severity]
        if not self._emit(city, unit, rectified, "rectified", finding_id):
            self.tally["city:open_at_end"] += 1  # to be rectified after the city's last day
            return
        self.tally["city:rectified_on_time" if on_time else "city:rectified_late"] += 1
        if plan.recheck is None:
            self.tally["city:rechecks_missed"] += 1
            return
        checked = rectified + plan.recheck
        if not self._emit(city, unit, checked, "recheck", finding_id,
                          result="fail" if plan.fails else "pass"):
            return
        if not plan.fails:
            self.tally["city:rechecks_passed"] += 1
            return
        self.tally["city:rechecks_failed"] += 1
        again = checked + self.rng.randint(HOUR, RECTIFY_WITHIN[severity] // 2)
        if self._emit(city, unit, again, "rectified", finding_id):
            self._emit(city, unit, again + self.rng.randint(2 * HOUR, DAY), "recheck",
                       finding_id, result="pass")

    def _emit(self, city: City, unit: _Unit, t: int, record: str, finding_id: str,
              **fields: str) -> bool:
        """One inspection record at ``t``; False (nothing made) at or after the city's end."""
        if t >= self.end:
            return False
        value: dict[str, Any] = {
            "event_id": city.next_id("in"), "occurred_at": city.clock.stamp(t),
            "unit_id": unit.unit_id, "unit_kind": unit.kind, "district": unit.district,
            "record": record, "finding_id": finding_id, **fields,
            "inspector_id": f"insp:{unit.district}-01",
        }
        city.emit(t, "inspection", value)
        self.tally["events:inspection"] += 1
        return True
