"""The simulated city's gates and sentinels (contract v1.1): checkpoints, risk areas, clinics.

Every day a few people enter at road checkpoints and stations (drivers and passengers), most
showing a negative test of the last two days and taking a landing test within the hour; a few
show none, a stale one, or skip the landing test. Counties change risk level now and then
(``area``, at 00:10 local, well apart from the entries), and an entry from a high or medium
county puts the person under the travel-push regimen, which the city then follows up like any
pushed traveller. Fever patients and antipyretic buyers visit sentinel facilities and are
mostly tested within the facility kind's window.

It draws from its own ``random.Random`` (seeded from the city's seed); the travellers it
pushes are followed up by the city's own draws, like every other.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from closedloop.streams.sim.city import City

__all__ = ["COUNTIES", "Gates"]

HOUR: Final = 3600
MINUTE: Final = 60
COUNTIES: Final = ("310115", "320505", "330106", "420106", "440305", "510107")
_FIRST_LEVELS: Final = {"320505": "high", "420106": "medium"}
_LEVELS: Final = ("high", "medium", "low", "low")
_ENTRY_RATE: Final = 0.003  # entries a day per person
_VISIT_RATE: Final = 0.002  # sentinel visits a day per person
_KINDS: Final = (("hospital", "fever"), ("clinic", "respiratory"), ("pharmacy", "antipyretic"))
_GATE_LAPSES: Final = 4.0  # times the city's lapse rate: a driver without proof is common
_WINDOW: Final = {"hospital": 2 * HOUR, "clinic": 2 * HOUR, "pharmacy": 24 * HOUR}


class Gates:
    """Checkpoints, county levels and sentinel visits of one simulated city."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.levels: dict[str, list[tuple[int, str]]] = {}  # county -> (from, level), sorted

    def day(self, city: City, day: int, start: int) -> None:
        self._areas(city, day, start)
        for _ in range(max(1, round(len(city.person_ids) * _ENTRY_RATE))):
            self._entry(city, day, start + self.rng.randint(6 * HOUR, 21 * HOUR))
        for _ in range(max(1, round(len(city.person_ids) * _VISIT_RATE))):
            self._visit(city, start + self.rng.randint(8 * HOUR, 21 * HOUR))

    # -- risk areas ---------------------------------------------------------------------------

    def _areas(self, city: City, day: int, start: int) -> None:
        changes = dict(_FIRST_LEVELS) if day == 0 else {
            self.rng.choice(COUNTIES): self.rng.choice(_LEVELS)}
        for county, level in sorted(changes.items()):
            t = start + 10 * MINUTE
            self.levels.setdefault(county, []).append((t, level))
            city.emit(t, "area", {"event_id": city.next_id("ar"),
                                  "occurred_at": city.clock.stamp(t),
                                  "county": county, "level": level})
            city.summary["city:area_changes"] += 1

    def level_at(self, county: str, t: int) -> str:
        level = "low"
        for since, value in self.levels.get(county, ()):
            if since <= t:
                level = value
        return level

    # -- checkpoints --------------------------------------------------------------------------

    def _entry(self, city: City, day: int, t: int) -> None:
        person = city.pick_general(self.rng)
        if person is None:
            return
        rng = self.rng
        city.keep_out_of_mass_testing(person)
        district = rng.choice(tuple(city.site_index))
        proof: str | None = city.clock.stamp(t - rng.randint(6 * HOUR, 40 * HOUR))
        if city.lapsed("entry_without_proof", rng, _GATE_LAPSES):
            proof = None if rng.random() < 0.5 else city.clock.stamp(t - 60 * HOUR)
        visited = rng.sample(COUNTIES, rng.randint(0, 2))
        value: dict[str, Any] = {
            "event_id": city.next_id("ck"), "occurred_at": city.clock.stamp(t),
            "person_id": city.person_ids[person],
            "checkpoint_id": f"ck:{district}-{rng.randint(1, 3):02d}", "district": district,
            "role": "driver" if rng.random() < 0.4 else "passenger",
            "proof_sampled_at": proof, "visited": visited,
        }
        city.emit(t, "checkpoint", value)
        city.summary["city:entries"] += 1
        if not city.lapsed("landing_test_missed", rng, _GATE_LAPSES):
            site = rng.choice(city.site_index[district])
            city.negative_single(person, t + rng.randint(5 * MINUTE, 100 * MINUTE), site,
                                 "landing", rng)
        levels = [self.level_at(county, t) for county in visited]
        risk = "high" if "high" in levels else "medium" if "medium" in levels else None
        if risk is not None:
            city.push_from_checkpoint(person, day, t, risk)
            city.summary["city:entry_pushes"] += 1

    # -- sentinel clinics ---------------------------------------------------------------------

    def _visit(self, city: City, t: int) -> None:
        person = city.pick_general(self.rng)
        if person is None:
            return
        rng = self.rng
        city.keep_out_of_mass_testing(person)
        kind, reason = rng.choice(_KINDS)
        district = city.district_of(person)
        city.emit(t, "clinic", {
            "event_id": city.next_id("cl"), "occurred_at": city.clock.stamp(t),
            "person_id": city.person_ids[person],
            "facility_id": f"fc:{district}-{rng.randint(1, 4):02d}",
            "facility_kind": kind, "district": district, "reason": reason,
        })
        city.summary["city:sentinel_visits"] += 1
        if not city.lapsed("sentinel_untested", rng, _GATE_LAPSES):
            window = _WINDOW[kind]
            city.negative_single(person, t + rng.randint(10 * MINUTE, window - 10 * MINUTE),
                                 city.home[person], "sentinel", rng)
