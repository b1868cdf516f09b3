"""The synthetic city behind ``closedloop simulate``: who lives where and what happens each day.

The city draws everything from one ``random.Random`` in a fixed order, so a seed fixes the whole
city. It produces only *valid* events, each with its event time; how they reach the file
(late, duplicated, malformed) is ``simulate``'s business. Times are whole epoch seconds, which
keeps the arithmetic cheap at a few hundred thousand events; :class:`Clock` renders them.
Lapses (missed visits, missed tests, slow labs, travellers never located) are part of the
city's behaviour, because they are what the engine exists to catch.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final, Protocol

from closedloop.schemas.identifiers import contains_raw

__all__ = [
    "COHORTS",
    "DAY",
    "DEFAULT_DISTRICTS",
    "HOUR",
    "MINUTE",
    "REGIMENS",
    "SHANGHAI",
    "City",
    "Clock",
    "DayBatch",
    "DayPlan",
    "Emission",
    "MassTube",
    "RoundDay",
    "Site",
    "stochastic_round",
]

SHANGHAI: Final = timezone(timedelta(hours=8))
"""Asia/Shanghai has kept +08:00 all year since 1991, so a fixed offset renders it exactly."""

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400

DEFAULT_DISTRICTS: Final = ("xuhui", "pudong", "jingan", "huangpu", "minhang", "yangpu")
# Rough centres (lat, lon); other district names get a seeded spot near the city centre.
_CENTRES: Final[dict[str, tuple[float, float]]] = {
    "xuhui": (31.188, 121.437),
    "pudong": (31.205, 121.590),
    "jingan": (31.250, 121.451),
    "huangpu": (31.232, 121.485),
    "minhang": (31.113, 121.382),
    "yangpu": (31.260, 121.526),
    "changning": (31.220, 121.424),
    "putuo": (31.249, 121.397),
    "hongkou": (31.265, 121.505),
    "baoshan": (31.405, 121.489),
}
_CITY_CENTRE: Final = (31.2, 121.5)
_KM_PER_DEG_LAT: Final = 111.0

COHORTS: Final[dict[str, int]] = {
    "cold_chain": 24,
    "medical": 24,
    "courier": 48,
    "construction": 48,
    "truck_driver": 48,
    "school_staff": 48,
    "elderly_care": 48,
}
"""Key populations and their test cadence in hours (the default policy's)."""
_COHORT_WEIGHTS: Final = (1, 3, 2, 2, 1, 2, 1)

REGIMENS: Final[dict[str, tuple[int, tuple[int, ...]]]] = {
    "high": (7, (1, 2, 3, 5, 7)),
    "medium": (7, (1, 4, 7)),
    "outside_province": (3, (1, 2, 3)),
    "inside_province": (3, (1, 3)),
}
"""Risk -> (days under control, test days); day 1 is the local date of arrival."""
# The first pushes cycle through every risk, short regimens first, so small cities show all.
_RISK_CYCLE: Final = ("inside_province", "outside_province", "medium", "high")
_RISK_WEIGHTS: Final = (3, 4, 2, 1)
_ORIGINS: Final[dict[str, tuple[str, ...]]] = {
    "high": ("urumqi", "sanya", "lhasa", "yiwu"),
    "medium": ("shenzhen", "guangzhou", "chengdu", "xian"),
    "outside_province": ("hangzhou", "nanjing", "beijing", "wuhan", "hefei"),
    "inside_province": ("chongming", "jinshan", "fengxian", "qingpu"),
}

# City behaviour per person and day (lapses come from the configured noise).
_COHORT_SHARE: Final = 0.10
_JOIN_RATE: Final = 0.01
_LEAVE_RATE: Final = 0.02
_PUSH_RATE: Final = 0.004
_MASS_RATE: Final = 0.5
_SINGLE_SHARE: Final = 0.02
_POOLED_TRAVEL_TEST: Final = 0.1
_EARLY_RELEASE: Final = 0.03
_POOL: Final = 10
_POOL_POSITIVE: Final = 0.003
_POOL_INVALID: Final = 0.004
_SINGLE_POSITIVE: Final = 0.0005
_SINGLE_INVALID: Final = 0.003
_FAST_KMH: Final = 240.0

_GENERAL, _COHORT, _TRAVELLER, _ISOLATED, _AWAY = 0, 1, 2, 3, 4

Emission = tuple[int, str, dict[str, Any]]
"""(occurred_at in epoch seconds, topic, event value)."""


def stochastic_round(rng: random.Random, x: float) -> int:
    """Round ``x`` up with probability equal to its fraction, so small rates still add up."""
    whole = math.floor(x)
    return whole + (1 if rng.random() < x - whole else 0)


class Clock:
    """Epoch seconds <-> local days and RFC 3339 text in +08:00."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must carry a UTC offset")
        first = start.astimezone(SHANGHAI).date()
        self.first_day: Final[date] = first
        self.midnight: Final = int(
            datetime(first.year, first.month, first.day, tzinfo=SHANGHAI).timestamp()
        )
        self._dates: dict[int, str] = {}

    def day_start(self, day: int) -> int:
        return self.midnight + day * DAY

    def day_of(self, t: int) -> int:
        return (t - self.midnight) // DAY

    def stamp(self, t: int, offset: bool = True) -> str:
        """RFC 3339; formatted by hand because it runs once per event."""
        day, sec = divmod(t - self.midnight, DAY)
        text = self._dates.get(day)
        if text is None:
            text = (self.first_day + timedelta(days=day)).isoformat()
            self._dates[day] = text
        hours, rest = divmod(sec, HOUR)
        minutes, seconds = divmod(rest, MINUTE)
        return f"{text}T{hours:02d}:{minutes:02d}:{seconds:02d}{'+08:00' if offset else ''}"


@dataclass(frozen=True, slots=True)
class Site:
    """A sampling site (采样点)."""

    site_id: str
    district: str
    lat: float
    lon: float


@dataclass(slots=True)
class MassTube:
    """Where a mass-testing tube's events sit in its batch, for transport noise to work on."""

    tube_id: str
    pool_size: int
    collected: int
    members: list[int]
    samplings: list[int] = field(default_factory=list)
    labs: list[int] = field(default_factory=list)


@dataclass(slots=True)
class DayBatch:
    """One day's valid events (and their consequences, which may fall on later days)."""

    day: int
    emissions: list[Emission] = field(default_factory=list)
    mass_tubes: list[MassTube] = field(default_factory=list)


@dataclass(slots=True)
class _Tube:
    tube_id: str
    site: int
    pool_size: int
    members: list[tuple[int, int]]  # (person, collection time)
    reason: str
    mass: bool = False


@dataclass(slots=True)
class _Member:
    person: int
    cohort: str
    every: int
    due: int
    next_sample: int
    leave_at: int | None = None


@dataclass(slots=True)
class _Traveller:
    person: int
    end: int  # end of the regimen's last day
    tests: list[int]  # day indexes still to test on
    push_day: int
    located: int | None
    next_visit: int
    release_at: int | None
    last: int = 0  # last clearance (located or visit)
    overdue: bool = False  # the scheduled visit was missed; next_visit is the late one


class DayPlan(Protocol):
    """What the city asks of its checkpoints and sentinel clinics each day
    (``streams/sim/entries.py``, which drives the city back through its methods)."""

    def day(self, city: City, day: int, start: int) -> None: ...


class RoundDay(Protocol):
    """What the city asks of a testing round's plan (``streams/sim/rounds.py``)."""

    day: int  # the round's local day (0-based)
    roster: dict[int, str]  # person -> district, for those on the roster

    def start_of_day(self, city: City, day: int, start: int) -> None: ...

    def after_mass_testing(self, city: City, day: int) -> None: ...

    def note_sampling(self, t: int, value: dict[str, Any]) -> None: ...

    def tested(self, day: int, candidates: Iterable[int]) -> list[int] | None: ...

    def session_time(self, start: int) -> int: ...


class City:
    """Persons, sites and labs, and a generator of each day's events."""

    def __init__(
        self,
        rng: random.Random,
        *,
        people: int,
        days: int,
        districts: tuple[str, ...],
        clock: Clock,
        lapse: float,
        identity: float,
        summary: Counter[str],
        gates: DayPlan | None = None,
        rounds: RoundDay | None = None,
    ) -> None:
        self.rng = rng
        self.gates = gates
        self._away: list[int] = []  # persons kept out of today's mass testing
        self.rounds = rounds
        self.clock = clock
        self.days = days
        self.lapse = lapse
        self.identity = identity
        self.summary = summary
        self.sites = self._build_sites(districts, people)
        self.site_index: dict[str, list[int]] = {d: [] for d in districts}
        for i, site in enumerate(self.sites):
            self.site_index[site.district].append(i)
        self.labs = [f"lab:{n:02d}" for n in range(1, max(2, people // 12500) + 1)]
        self.person_ids = self._build_ids(people)
        self.home = [rng.choice(self.site_index[rng.choice(districts)]) for _ in range(people)]
        self.status = [_GENERAL] * people
        self.members: dict[int, _Member] = {}
        self.travellers: dict[int, _Traveller] = {}
        self._counters: dict[str, Iterator[int]] = {}
        self._pushes = 0
        self._leavings = 0
        self._batch = DayBatch(0)
        self._tubes: list[_Tube] = []
        self._pooled: dict[int, list[int]] = {}
        summary.update(
            {"city:persons": people, "city:sites": len(self.sites), "city:labs": len(self.labs)}
        )

    # -- the city's fixtures -------------------------------------------------------------------

    def _build_sites(self, districts: tuple[str, ...], people: int) -> list[Site]:
        per_district = max(2, round(people / (len(districts) * 400)))
        sites = []
        for district in districts:
            lat, lon = _CENTRES.get(district) or self._spot(_CITY_CENTRE, 5.0, 18.0)
            for n in range(1, per_district + 1):
                s_lat, s_lon = self._spot((lat, lon), 0.0, 3.0)
                sites.append(Site(f"site:{district}-{n:02d}", district, s_lat, s_lon))
        return sites

    def _spot(
        self, centre: tuple[float, float], low_km: float, high_km: float
    ) -> tuple[float, float]:
        angle = self.rng.uniform(0.0, 2 * math.pi)
        km = self.rng.uniform(low_km, high_km)
        lat = centre[0] + km * math.sin(angle) / _KM_PER_DEG_LAT
        lon = centre[1] + km * math.cos(angle) / (_KM_PER_DEG_LAT * math.cos(math.radians(lat)))
        return round(lat, 6), round(lon, 6)

    def _build_ids(self, people: int) -> list[str]:
        """``p:`` + 12 hex digits: opaque, and never holding what looks like a resident ID
        or a phone (CONTRACT.md §2 v1.1 searches inside strings: ``p:13812345678a`` is one)."""
        seen: set[str] = set()
        ids: list[str] = []
        while len(ids) < people:
            pid = f"p:{self.rng.getrandbits(48):012x}"
            if pid not in seen and not contains_raw(pid):
                seen.add(pid)
                ids.append(pid)
        return ids

    def distance_km(self, a: int, b: int) -> float:
        """Equirectangular distance between two sites; plenty at city scale."""
        sa, sb = self.sites[a], self.sites[b]
        dy = (sa.lat - sb.lat) * _KM_PER_DEG_LAT
        dx = (sa.lon - sb.lon) * _KM_PER_DEG_LAT * math.cos(math.radians((sa.lat + sb.lat) / 2))
        return math.hypot(dx, dy)

    def district_of(self, person: int) -> str:
        return self.sites[self.home[person]].district

    def is_free(self, person: int) -> bool:
        """Not in a cohort, a regimen or isolation."""
        return self.status[person] == _GENERAL

    def pick_general(self, rng: random.Random | None = None) -> int | None:
        """A random person free for something new (not in a cohort, a regimen or isolation)."""
        draw = (rng or self.rng).randrange
        for _ in range(64):
            person = draw(len(self.person_ids))
            if self.status[person] == _GENERAL:
                return person
        return None

    def next_id(self, prefix: str) -> str:
        """``sa-00000001`` …: unique per topic (the producer) within a run."""
        counter = self._counters.get(prefix)
        if counter is None:
            counter = self._counters[prefix] = itertools.count(1)
        return f"{prefix}-{next(counter):08d}"

    # -- one day --------------------------------------------------------------------------------

    def day(self, day: int) -> DayBatch:
        """Everything that starts on local ``day`` (0-based), consequences included."""
        self._batch = DayBatch(day)
        self._tubes = []
        self._pooled = {}
        start = self.clock.day_start(day)
        for person in self._away:  # back from yesterday's gate or clinic
            if self.status[person] == _AWAY:
                self.status[person] = _GENERAL
        self._away = []
        if self.rounds is not None:
            self.rounds.start_of_day(self, day, start)
        if day == 0:
            self._enrol_initial(start)
        else:
            self._roster_changes(day, start)
        self._cohort_tests(start)
        self._pushes_of_day(day, start)
        self._follow_travellers(day, start)
        if self.gates is not None:
            self.gates.day(self, day, start)
        self._mass_testing(start, day)
        if self.rounds is not None:
            self.rounds.after_mass_testing(self, day)
        self._identity_misuse(start)
        self._report_tubes()
        self.summary.update(f"events:{topic}" for _, topic, _ in self._batch.emissions)
        return self._batch

    def _emit(self, t: int, topic: str, value: dict[str, Any]) -> int:
        emissions = self._batch.emissions
        emissions.append((t, topic, value))
        if self.rounds is not None and topic == "sampling":
            self.rounds.note_sampling(t, value)
        return len(emissions) - 1

    emit = _emit  # for the city's gates (streams/sim/entries.py)

    def _worker(self, person: int) -> str:
        district = self.district_of(person)
        return f"gw:{district}-{self.rng.randint(1, len(self.site_index[district])):02d}"

    def _followup(self, t: int, person: int, kind: str) -> None:
        self._emit(
            t,
            "followup",
            {
                "event_id": self.next_id("fu"),
                "occurred_at": self.clock.stamp(t),
                "person_id": self.person_ids[person],
                "kind": kind,
                "worker_id": self._worker(person),
            },
        )

    def _lapsed(self, kind: str, rate: float | None = None) -> bool:
        if self.rng.random() < (self.lapse if rate is None else rate):
            self.summary[f"lapse:{kind}"] += 1
            return True
        return False

    def lapsed(self, kind: str, rng: random.Random, factor: float = 1.0) -> bool:
        """A lapse at ``factor`` times the city's rate, drawn from ``rng`` (the gates' own)."""
        if rng.random() < self.lapse * factor:
            self.summary[f"lapse:{kind}"] += 1
            return True
        return False

    def negative_single(self, person: int, t: int, site: int, reason: str,
                        rng: random.Random) -> None:
        """A single-tube test at ``site`` with a punctual negative result (landing, sentinel)."""
        self.negative_single_id(self.person_ids[person], t, site, reason, rng)

    def negative_single_id(self, person_id: str, t: int, site: int, reason: str,
                           rng: random.Random) -> None:
        """``negative_single`` of anyone, a person of the city's or not (a visitor)."""
        tube = _Tube(self.next_id("tk"), site, 1, [], reason)
        place = self.sites[site]
        self._emit(t, "sampling", {
            "event_id": self.next_id("sa"), "occurred_at": self.clock.stamp(t),
            "person_id": person_id, "tube_id": tube.tube_id,
            "site_id": place.site_id, "district": place.district, "pool_size": 1,
            "site_lat": place.lat, "site_lon": place.lon, "reason": reason})
        lab = rng.choice(self.labs)
        received = t + rng.randint(30 * MINUTE, 2 * HOUR)
        reported = received + rng.randint(30 * MINUTE, 4 * HOUR)
        for at, status in ((received, "received"), (reported, "reported")):
            value: dict[str, Any] = {"event_id": self.next_id("lb"),
                                     "occurred_at": self.clock.stamp(at), "tube_id": tube.tube_id,
                                     "lab_id": lab, "status": status}
            if status == "reported":
                value["result"] = "negative"
            self._emit(at, "lab", value)
        self.summary["city:tubes"] += 1
        self.summary["city:negative_tubes"] += 1

    def keep_out_of_mass_testing(self, person: int) -> None:
        """A person at a gate or a sentinel clinic today is tested there, not in today's
        10-in-1 pools: a pooled tube's samplings may be held back for hours (results first),
        and a deadline they would satisfy must not hang on such transport noise."""
        if self.status[person] == _GENERAL:
            self.status[person] = _AWAY
            self._away.append(person)

    def push_from_checkpoint(self, person: int, day: int, entry: int, risk: str) -> None:
        """An entry from a risky county: followed up as a pushed traveller, arrived at entry."""
        self._push(person, day, entry, risk=risk, arrived=entry, emit=False)

    # -- key populations ------------------------------------------------------------------------

    def _enrol(self, person: int, cohort: str, t: int) -> None:
        every = COHORTS[cohort] * HOUR
        due = t + every
        self.members[person] = _Member(person, cohort, every, due, self._ahead_of(due, 1 * HOUR))
        self.status[person] = _COHORT
        self.summary["city:cohort_enrolments"] += 1
        self._roster(t, person, cohort, active=True)

    def _roster(self, t: int, person: int, cohort: str, *, active: bool) -> None:
        self._emit(
            t,
            "cohort",
            {
                "event_id": self.next_id("co"),
                "occurred_at": self.clock.stamp(t),
                "person_id": self.person_ids[person],
                "cohort": cohort,
                "district": self.district_of(person),
                "active": active,
            },
        )

    def _ahead_of(self, due: int, most: int) -> int:
        """A daytime moment up to ``most`` before ``due``: staff swab and visit from 07:00.

        Moving an early-morning time to the evening before keeps the chain of deadlines met
        without drifting everyone into the small hours day after day.
        """
        t = due - self.rng.randint(15 * MINUTE, most)
        if (t - self.clock.midnight) % DAY < 7 * HOUR:
            t -= 10 * HOUR
        return t

    def _enrol_initial(self, start: int) -> None:
        names = tuple(COHORTS)
        wanted = stochastic_round(self.rng, len(self.person_ids) * _COHORT_SHARE)
        for n in range(wanted):
            person = self.pick_general()
            if person is None:
                break
            cohort = names[n] if n < len(names) else self.rng.choices(names, _COHORT_WEIGHTS)[0]
            self._enrol(person, cohort, start + self.rng.randint(6 * HOUR, 9 * HOUR))

    def _roster_changes(self, day: int, start: int) -> None:
        leaving = stochastic_round(self.rng, len(self.members) * _LEAVE_RATE)
        if day == self.days - 1 and self._leavings == 0:
            leaving = max(leaving, 1)
        for person in self.rng.sample(list(self.members), min(leaving, len(self.members))):
            member = self.members[person]
            member.leave_at = start + self.rng.randint(8 * HOUR, 20 * HOUR)
            self._leavings += 1
            self._roster(member.leave_at, person, member.cohort, active=False)
        names = tuple(COHORTS)
        for _ in range(stochastic_round(self.rng, len(self.members) * _JOIN_RATE)):
            joiner = self.pick_general()
            if joiner is not None:
                cohort = self.rng.choices(names, _COHORT_WEIGHTS)[0]
                self._enrol(joiner, cohort, start + self.rng.randint(8 * HOUR, 18 * HOUR))

    def _cohort_tests(self, start: int) -> None:
        end = start + DAY
        for person, member in list(self.members.items()):
            stop = end if member.leave_at is None else min(end, member.leave_at)
            while member.next_sample < stop:
                t = max(member.next_sample, start)
                if self._lapsed("missed_cohort_test"):
                    member.due += self.rng.randint(1 * HOUR, 10 * HOUR)
                    member.next_sample = member.due
                    continue
                self._single(person, t, "key_population")
                member.due = t + member.every
                member.next_sample = self._ahead_of(member.due, 1 * HOUR)
            if member.leave_at is not None:
                del self.members[person]
                self.status[person] = _GENERAL

    # -- pushed travellers ----------------------------------------------------------------------

    def _pushes_of_day(self, day: int, start: int) -> None:
        wanted = stochastic_round(self.rng, len(self.person_ids) * _PUSH_RATE)
        wanted = max(wanted, 4 if day == 0 else 1)
        for _ in range(wanted):
            person = self.pick_general()
            if person is not None:
                self._push(person, day, start + self.rng.randint(7 * HOUR, 22 * HOUR))

    def _next_risk(self) -> str:
        self._pushes += 1
        if self._pushes <= len(_RISK_CYCLE):
            return _RISK_CYCLE[self._pushes - 1]
        return self.rng.choices(tuple(REGIMENS), _RISK_WEIGHTS)[0]

    def _push(self, person: int, day: int, push: int, *, risk: str | None = None,
              arrived: int | None = None, emit: bool = True) -> None:
        risk = self._next_risk() if risk is None else risk
        arrived = push - self.rng.randint(1 * HOUR, 30 * HOUR) if arrived is None else arrived
        if emit:
            self._emit(
                push,
                "travel",
                {
                    "event_id": self.next_id("tr"),
                    "occurred_at": self.clock.stamp(push),
                    "person_id": self.person_ids[person],
                    "district": self.district_of(person),
                    "arrived_at": self.clock.stamp(arrived),
                    "origin": self.rng.choice(_ORIGINS[risk]),
                    "risk": risk,
                },
            )
            self.summary["city:pushes"] += 1
        located = self._locate(person, push)
        first_day = self.clock.day_of(arrived)
        length, test_days = REGIMENS[risk]
        end = self.clock.day_start(first_day + length)
        tests = [first_day + n - 1 for n in test_days if first_day + n - 1 >= day]
        release = None if located is None else self._release_time(located, end)
        next_visit = end if located is None else self._next_visit(located)
        self.travellers[person] = _Traveller(
            person, end, tests, day, located, next_visit, release, located or push
        )
        self.status[person] = _TRAVELLER

    def _locate(self, person: int, push: int) -> int | None:
        """第一时间定位: mostly within the hour; the lapses are late or never."""
        if self._lapsed("unlocated", self.lapse / 3):
            return None
        if self._lapsed("late_located", self.lapse * 2 / 3):
            located = push + self.rng.randint(2 * HOUR + 10 * MINUTE, 6 * HOUR)
        else:
            located = push + self.rng.randint(5 * MINUTE, 60 * MINUTE)
        self._followup(located, person, "located")
        return located

    def _release_time(self, located: int, end: int) -> int | None:
        """解除: mostly the evening of the regimen's last day, now and then earlier."""
        if self.rng.random() < _EARLY_RELEASE and end - located > 8 * HOUR:
            return self.rng.randint(located + 6 * HOUR, end - 2 * HOUR)
        release = end - DAY + self.rng.randint(19 * HOUR, 21 * HOUR + 30 * MINUTE)
        return release if release > located else None

    def _next_visit(self, last: int) -> int:
        """The next daily visit, before the 24 h clearance runs out."""
        return self._ahead_of(last + DAY, 4 * HOUR)

    def _follow_travellers(self, day: int, start: int) -> None:
        end = start + DAY
        for person, tr in list(self.travellers.items()):
            limit = min(end, tr.end, tr.release_at if tr.release_at is not None else end)
            if tr.located is not None:
                self._visits(tr, limit)
                if tr.tests and tr.tests[0] == day:
                    self._regimen_test(tr, day, start, limit)
                if tr.release_at is not None and start <= tr.release_at < end:
                    self._followup(tr.release_at, person, "released")
                    self.summary["city:released"] += 1
            while tr.tests and tr.tests[0] <= day:
                tr.tests.pop(0)
            if end >= tr.end or (tr.release_at is not None and tr.release_at < end):
                del self.travellers[person]
                self.status[person] = _GENERAL

    def _visits(self, tr: _Traveller, limit: int) -> None:
        while tr.next_visit < limit:
            t = tr.next_visit
            if not tr.overdue and self._lapsed("missed_visit"):
                tr.overdue = True
                tr.next_visit = tr.last + DAY + self.rng.randint(1 * HOUR, 8 * HOUR)
                continue
            tr.overdue = False
            self._followup(t, tr.person, "visit")
            tr.last = t
            tr.next_visit = self._next_visit(t)

    def _regimen_test(self, tr: _Traveller, day: int, start: int, limit: int) -> None:
        if self._lapsed("missed_test"):
            return
        if day > tr.push_day and self.rng.random() < _POOLED_TRAVEL_TEST:
            self._pooled.setdefault(self.home[tr.person], []).append(tr.person)
            return
        if day == tr.push_day and tr.located is not None:
            t = tr.located + self.rng.randint(30 * MINUTE, 3 * HOUR)
        else:
            t = start + self.rng.randint(8 * HOUR, 17 * HOUR)
        t = min(t, limit - 10 * MINUTE)
        if t >= start and (tr.located is None or t > tr.located):
            self._single(tr.person, t, "travel_regimen")

    # -- testing --------------------------------------------------------------------------------

    def _single(self, person: int, t: int, reason: str, site: int | None = None) -> _Tube:
        tube = _Tube(
            self.next_id("tb"),
            self.home[person] if site is None else site,
            1,
            [(person, t)],
            reason,
        )
        self._tubes.append(tube)
        return tube

    def _mass_testing(self, start: int, day: int) -> None:
        """全员核酸: about half the free population a day, 10-in-1 at the home site.

        With a testing round (``rounds``), its day samples the roster instead, inside the
        round's hours; see streams/sim/rounds.py.
        """
        by_site: dict[int, list[int]] = {}
        rnd = self.rng.random
        drawn = (person for person, status in enumerate(self.status)
                 if status == _GENERAL and rnd() < _MASS_RATE)
        plan = self.rounds
        chosen = drawn if plan is None else plan.tested(day, drawn)
        for person in drawn if chosen is None else chosen:
            by_site.setdefault(self.home[person], []).append(person)
        session = self._session_time
        if plan is not None and day == plan.day:
            session = plan.session_time
            for site, extra in self._pooled.items():  # already in: their regimen's test
                by_site.setdefault(site, []).extend(p for p in extra if p not in plan.roster)
        else:
            for site, extra in self._pooled.items():
                by_site.setdefault(site, []).extend(extra)
        for site in sorted(by_site):
            self._pool_site(site, by_site[site], start, session)

    def _pool_site(self, site: int, people: list[int], start: int,
                   session: Callable[[int], int]) -> None:
        self.rng.shuffle(people)
        pooled: list[int] = []
        for person in people:
            if self.rng.random() < _SINGLE_SHARE:
                tube = self._single(person, session(start), "mass", site)
                tube.mass = True
            else:
                pooled.append(person)
        for at in range(0, len(pooled), _POOL):
            t = session(start)
            jitter = sorted(self.rng.randint(0, 4 * MINUTE) for _ in pooled[at : at + _POOL])
            members = [(p, t + j) for p, j in zip(pooled[at : at + _POOL], jitter, strict=True)]
            self._tubes.append(_Tube(self.next_id("tb"), site, _POOL, members, "mass", True))

    def _session_time(self, start: int) -> int:
        opens = 7 * HOUR if self.rng.random() < 0.6 else 14 * HOUR
        return start + opens + self.rng.randint(0, 4 * HOUR)

    def _identity_misuse(self, start: int) -> None:
        """借用、套用: one identity swabbed at far-apart sites within minutes, or too often."""
        for _ in range(stochastic_round(self.rng, len(self.person_ids) * self.identity)):
            person = self.pick_general()
            if person is None:
                return
            t = start + self.rng.randint(8 * HOUR, 20 * HOUR)
            if self.rng.random() < 0.5 and self._far_apart(person, t):
                continue
            self.summary["noise:identity_many"] += 1
            times = sorted(
                start + self.rng.randint(7 * HOUR, 21 * HOUR) for _ in range(self.rng.randint(4, 5))
            )
            for when in times:
                self._single(person, when, "mass")

    def _far_apart(self, person: int, t: int) -> bool:
        home = self.home[person]
        candidates = self.rng.sample(range(len(self.sites)), min(8, len(self.sites)))
        far = max(candidates, key=lambda s: self.distance_km(home, s))
        km = self.distance_km(home, far)
        if km < 3.0:
            return False
        self.summary["noise:identity_far"] += 1
        elapsed = self.rng.randint(MINUTE, max(MINUTE + 1, int(km / _FAST_KMH * HOUR)))
        self._single(person, t, "mass")
        self._single(person, t + elapsed, "mass", far)
        return True

    # -- the lab --------------------------------------------------------------------------------

    def _report_tubes(self) -> None:
        """Draw each tube's result, make sure rare outcomes show up daily, then emit it all."""
        tubes = self._tubes
        results = [self._draw(tube) for tube in tubes]
        pools = [i for i, tube in enumerate(tubes) if tube.pool_size > 1]
        for wanted in ("positive", "invalid"):
            spare = [i for i in pools if results[i] == "negative"]
            if spare and wanted not in (results[i] for i in pools):
                results[self.rng.choice(spare)] = wanted
        for tube, result in zip(tubes, results, strict=True):
            self._emit_tube(tube, result)

    def _draw(self, tube: _Tube) -> str:
        roll = self.rng.random()
        positive, invalid = (
            (_POOL_POSITIVE, _POOL_INVALID)
            if tube.pool_size > 1
            else (_SINGLE_POSITIVE, _SINGLE_INVALID)
        )
        if roll < positive:
            return "positive"
        return "invalid" if roll < positive + invalid else "negative"

    def _emit_tube(self, tube: _Tube, result: str) -> None:
        site = self.sites[tube.site]
        record = MassTube(
            tube.tube_id,
            tube.pool_size,
            min(t for _, t in tube.members),
            [p for p, _ in tube.members],
        )
        for person, t in tube.members:
            record.samplings.append(
                self._emit(
                    t,
                    "sampling",
                    {
                        "event_id": self.next_id("sa"),
                        "occurred_at": self.clock.stamp(t),
                        "person_id": self.person_ids[person],
                        "tube_id": tube.tube_id,
                        "site_id": site.site_id,
                        "district": site.district,
                        "pool_size": tube.pool_size,
                        "site_lat": site.lat,
                        "site_lon": site.lon,
                        "reason": tube.reason,
                    },
                )
            )
        reported = self._lab_chain(record, result)
        # A round's swabs are scanned in on the spot (扫码采样): their samplings never wait
        # behind their results, so a round's deadlines hang on no transport noise.
        on_round_day = self.rounds is not None and self._batch.day == self.rounds.day
        if tube.mass and not on_round_day:
            self._batch.mass_tubes.append(record)
        self.summary["city:tubes"] += 1
        self.summary[f"city:{result}_tubes"] += 1
        self._after_result(tube, result, reported)

    def _lab_chain(self, record: MassTube, result: str) -> int:
        """收样 then 出结果; the slow ones breach the 4 h / 12 h SLAs."""
        collected = record.collected
        lab = self.rng.choice(self.labs)
        if self._lapsed("lab_transport", self.lapse / 2):
            received = collected + self.rng.randint(4 * HOUR + 30 * MINUTE, 9 * HOUR)
        else:
            received = collected + self.rng.randint(30 * MINUTE, 3 * HOUR)
        if self._lapsed("lab_result", self.lapse / 2):
            reported = collected + self.rng.randint(12 * HOUR + 30 * MINUTE, 20 * HOUR)
        else:
            budget = 12 * HOUR - 5 * MINUTE - (received - collected)
            reported = received + self.rng.randint(
                30 * MINUTE, max(31 * MINUTE, min(6 * HOUR, budget))
            )
        for t, status in ((received, "received"), (reported, "reported")):
            value: dict[str, Any] = {
                "event_id": self.next_id("lb"),
                "occurred_at": self.clock.stamp(t),
                "tube_id": record.tube_id,
                "lab_id": lab,
                "status": status,
            }
            if status == "reported":
                value["result"] = result
            record.labs.append(self._emit(t, "lab", value))
        return reported

    def _after_result(self, tube: _Tube, result: str, reported: int) -> None:
        """Positives go to isolation; pooled positives and invalids call every member back."""
        people = [p for p, _ in tube.members]
        if result == "positive" and tube.pool_size == 1:
            self._isolate(people[0])
            return
        if result == "negative" or tube.reason == "retest":
            return
        carrier = self.rng.choice(people) if result == "positive" else None
        for person in people:
            if self._lapsed("missed_retest"):
                continue
            t = reported + self.rng.randint(30 * MINUTE, 5 * HOUR)
            retest = _Tube(self.next_id("tb"), self.home[person], 1, [(person, t)], "retest")
            self._emit_tube(retest, "positive" if person == carrier else "negative")

    def _isolate(self, person: int) -> None:
        if self.status[person] == _GENERAL:
            self.status[person] = _ISOLATED
