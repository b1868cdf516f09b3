"""A testing round in the synthetic city (``closedloop simulate --round``, CONTRACT.md §4 v1.1).

The city gets a roster (a ``population`` record per person on the first night: resident or
floating, with their district and grid), a few people who leave and a few who move district
before the round, and one city-wide round (districts ``["*"]``) open 06:00–18:00 local on the
second day (the only day, in a one-day city). That day the mass testing samples everyone on the
roster inside the round's hours except a few planned misses; most of those are caught up
within the catch-up window with a single tube, and a few visitors who are not on the roster
are sampled too.

Everything here draws from its own ``random.Random``, and the city calls it only when a round
is asked for, so a city simulated without ``--round`` keeps its bytes.

The summary's ``city:round_*`` counters are the round's outcome as the engine should see it,
counted from every sampling the city emitted (``note_sampling``): ``round_in_scope``,
``round_sampled``, ``round_missed``, ``round_caught_up``, ``round_not_on_roster``, plus
``round_left`` and ``round_moved`` (roster changes) and ``round_visitors``. Transport noise can
make the engine's figures differ: a sampling that arrives after the close fired (a late line,
a tube whose result came first) no longer counts as sampled in the round.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from closedloop.schemas.identifiers import contains_raw
from closedloop.streams.sim.city import HOUR, MINUTE, stochastic_round

if TYPE_CHECKING:
    from closedloop.streams.sim.city import City

__all__ = ["CATCHUP_WITHIN", "ROUND_ID", "RoundPlan"]

ROUND_ID: Final = "round-citywide"
CATCHUP_WITHIN: Final = 24 * HOUR  # the default policy's catchup_within
_OPENS: Final = 6 * HOUR
_CLOSES: Final = 18 * HOUR
_FLOATING: Final = 0.15
_LEFT: Final = 0.01
_MOVED: Final = 0.01
_MISSED: Final = 0.04
_CAUGHT_UP: Final = 0.8
_VISITORS: Final = 0.005


class RoundPlan:
    """The roster and the round, and who the round's day samples."""

    def __init__(self, rng: random.Random, days: int) -> None:
        self.rng = rng
        self.day = min(1, days - 1)  # the round's local day (0-based)
        self.opens = 0
        self.closes = 0
        self.roster: dict[int, str] = {}  # person -> district, for those not left
        self.left: set[int] = set()
        self.missed: set[int] = set()  # planned: not sampled by the round's mass testing
        self.sampled_at: dict[str, list[int]] = {}  # person_id -> sampling times

    # -- hooks the city calls -------------------------------------------------------------------

    def note_sampling(self, t: int, value: dict[str, Any]) -> None:
        self.sampled_at.setdefault(value["person_id"], []).append(t)

    def start_of_day(self, city: City, day: int, start: int) -> None:
        """The roster on the first night; leavers, movers and the round on the round's day."""
        if day == 0:
            self._roster(city, start)
        if day == self.day:
            self._changes(city, start)
            self.opens, self.closes = start + _OPENS, start + _CLOSES
            t = start + 5 * HOUR
            city.emit(t, "round", {
                "event_id": city.next_id("rd"), "occurred_at": city.clock.stamp(t),
                "round_id": ROUND_ID, "opens_at": city.clock.stamp(self.opens),
                "closes_at": city.clock.stamp(self.closes), "districts": ["*"]})

    def tested(self, day: int, candidates: Iterable[int]) -> list[int] | None:
        """Who the day's mass testing samples, or None for the city's usual half.

        The round's day: everyone on the roster but the planned misses. Leavers are not in the
        city from the round's day on, and the planned misses are left to the catch-up plan on
        the day after (the usual mass testing would catch them up by chance).
        """
        if day == self.day:
            return sorted(p for p in self.roster if p not in self.missed)
        if day > self.day:
            return [p for p in candidates if p not in self.left
                    and (day > self.day + 1 or p not in self.missed)]
        return None

    def session_time(self, start: int) -> int:
        """A session inside the round's hours, its last swab (4 min of jitter) included."""
        if self.rng.random() < 0.6:
            return start + 7 * HOUR + self.rng.randint(0, 4 * HOUR)
        return start + 13 * HOUR + self.rng.randint(0, 4 * HOUR + 30 * MINUTE)

    def after_mass_testing(self, city: City, day: int) -> None:
        """The round's day: catch-up swabs for most misses, and visitors off the roster."""
        if day != self.day:
            return
        for person in sorted(self.missed):
            if self.rng.random() < _CAUGHT_UP:
                t = self.closes + self.rng.randint(30 * MINUTE, 20 * HOUR)
                city.negative_single(person, t, city.home[person], "catch_up", self.rng)
        for _ in range(max(2, stochastic_round(self.rng, len(city.person_ids) * _VISITORS))):
            visitor = self._visitor_id(city)
            site = self.rng.randrange(len(city.sites))
            t = self.opens + self.rng.randint(1 * HOUR, 11 * HOUR)
            city.negative_single_id(visitor, t, site, "mass", self.rng)
            city.summary["city:round_visitors"] += 1

    def finish(self, city: City) -> None:
        """Count the round's outcome from every sampling emitted (call once, at the end)."""
        summary = city.summary
        ids = city.person_ids
        on_roster = {ids[p] for p in self.roster}
        summary["city:round_in_scope"] += len(on_roster)
        for pid, times in self.sampled_at.items():
            in_round = any(self.opens <= t <= self.closes for t in times)
            if pid not in on_roster:
                summary["city:round_not_on_roster"] += in_round
            elif in_round:
                summary["city:round_sampled"] += 1
        for pid in on_roster:
            times = self.sampled_at.get(pid, [])
            if any(self.opens <= t <= self.closes for t in times):
                continue
            summary["city:round_missed"] += 1
            if any(self.closes < t <= self.closes + CATCHUP_WITHIN for t in times):
                summary["city:round_caught_up"] += 1

    # -- the roster -----------------------------------------------------------------------------

    def _record(self, city: City, t: int, person: int, district: str, status: str) -> None:
        number = city.sites[city.home[person]].site_id.rsplit("-", 1)[1]
        city.emit(t, "population", {
            "event_id": city.next_id("po"), "occurred_at": city.clock.stamp(t),
            "person_id": city.person_ids[person], "district": district,
            "grid": f"grid:{district}-{number}", "status": status})

    def _roster(self, city: City, start: int) -> None:
        for person in range(len(city.person_ids)):
            district = city.district_of(person)
            status = "floating" if self.rng.random() < _FLOATING else "resident"
            self._record(city, start + self.rng.randint(0, 3 * HOUR), person, district, status)
            self.roster[person] = district
        city.summary["city:round_roster"] += len(self.roster)

    def _changes(self, city: City, start: int) -> None:
        people = sorted(self.roster)
        count = len(people)
        leaving = self.rng.sample(people, min(count, max(1, stochastic_round(
            self.rng, count * _LEFT))))
        for person in leaving:
            t = start + self.rng.randint(3 * HOUR + 30 * MINUTE, 4 * HOUR + 30 * MINUTE)
            self._record(city, t, person, self.roster.pop(person), "left")
            self.left.add(person)
            city.summary["city:round_left"] += 1
        districts = sorted(city.site_index)
        staying = sorted(self.roster)
        moving = self.rng.sample(staying, min(len(staying), max(1, stochastic_round(
            self.rng, count * _MOVED))))
        for person in moving:
            if len(districts) < 2:
                break
            new = self.rng.choice([d for d in districts if d != self.roster[person]])
            t = start + self.rng.randint(3 * HOUR + 30 * MINUTE, 4 * HOUR + 30 * MINUTE)
            self._record(city, t, person, new, "resident")
            self.roster[person] = new
            city.summary["city:round_moved"] += 1
        free = [p for p in sorted(self.roster) if city.is_free(p)]
        wanted = max(3, stochastic_round(self.rng, len(self.roster) * _MISSED))
        self.missed = set(self.rng.sample(free, min(len(free), wanted)))

    def _visitor_id(self, city: City) -> str:
        """``v:`` + 12 hex digits: never a resident's ``p:`` id, never a raw identifier."""
        while True:
            vid = f"v:{self.rng.getrandbits(48):012x}"
            if not contains_raw(vid):
                return vid

