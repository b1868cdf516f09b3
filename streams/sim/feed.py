"""The feed of the synthetic city: its events as replay JSON Lines, with known noise.

The replay tests, the demo and the benchmarks need input whose every quirk is known: late and
duplicated lines, results that arrive before their samplings, malformed lines, borrowed
identities and lapses by grid workers and labs. ``simulate`` makes such a city from a seed,
byte for byte the same on every run, and counts each quirk in a summary so a test can check
the engine caught exactly those. The city itself lives in :mod:`closedloop.streams.sim.city`;
this module decides how its events reach the file.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from closedloop.streams.sim.city import (
    COHORTS,
    DEFAULT_DISTRICTS,
    HOUR,
    MINUTE,
    SHANGHAI,
    City,
    Clock,
    DayBatch,
    stochastic_round,
)
from closedloop.streams.sim.entries import Gates

if TYPE_CHECKING:
    from closedloop.streams.sim.receipts import Habits

__all__ = [
    "DEFAULT_START",
    "MALFORMED_KINDS",
    "CityConfig",
    "Noise",
    "format_summary",
    "simulate",
]

DEFAULT_START: Final = datetime(2022, 9, 6, tzinfo=SHANGHAI)
MALFORMED_KINDS: Final = (
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "unknown_enum",
    "naive_timestamp",
    "raw_identifier",
    "unknown_cohort",
    "pool_overflow",
    "unknown_topic",
)
"""The kinds of bad line injected, in the order they take turns."""

_DISTRICT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OPTIONAL: Final = frozenset({"site_lat", "site_lon", "reason", "worker_id", "event_id"})
_UNKNOWN_COHORT: Final = "night_market"
_UNKNOWN_TOPIC: Final = "vaccination"
_SPECIMEN_TOPICS: Final = ("sampling", "lab", "travel", "followup", "cohort")
_LATE_WITHIN_LATENESS: Final = 0.9  # most late lines still beat allowed_lateness (5 min)


@dataclass(frozen=True, slots=True)
class Noise:
    """Rates of imperfection, each a fraction.

    ``late``, ``duplicate``: of valid events; ``result_first``: of mass-testing tubes;
    ``malformed``: of lines; ``identity``: persons a day whose identity is misused;
    ``lapse``: of each chance to lapse (locate, visit, test, retest, lab transport/result).
    """

    late: float = 0.02
    duplicate: float = 0.005
    result_first: float = 0.02
    malformed: float = 0.002
    identity: float = 0.0005
    lapse: float = 0.03

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"noise.{f.name} must be a fraction in [0, 1], got {value!r}")

    def scaled(self, factor: float) -> Noise:
        """Every rate times ``factor`` (capped at 1); 0 gives a clean, punctual city."""
        if factor < 0:
            raise ValueError(f"noise scale must be >= 0, got {factor!r}")
        return replace(
            self, **{f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self)}
        )


@dataclass(frozen=True, slots=True)
class CityConfig:
    """What city to simulate; the same config always gives the same bytes."""

    seed: int = 1
    people: int = 2000
    days: int = 3
    start: datetime = DEFAULT_START  # the first simulated day is start's local date
    districts: tuple[str, ...] = DEFAULT_DISTRICTS
    noise: Noise = field(default_factory=Noise)
    gates: bool = True  # v1.1: checkpoints, county levels and sentinel visits
    round: bool = False  # v1.1: a roster and a city-wide testing round (streams/sim/rounds.py)
    receipts: bool = False  # v1.2: received_at on every line, sources' habits (receipts.py)
    inspections: bool = False  # v1.2: supervision rounds over units (inspections.py)

    def __post_init__(self) -> None:
        if self.people < 1 or self.days < 1:
            raise ValueError("people and days must be at least 1")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must carry a UTC offset (RFC 3339)")
        if not self.districts or len(set(self.districts)) != len(self.districts):
            raise ValueError("districts must be a non-empty list of distinct names")
        bad = [d for d in self.districts if not _DISTRICT_NAME.match(d)]
        if bad:
            raise ValueError(f"district names must be letters, digits, _ or -: {bad!r}")


def simulate(config: CityConfig, summary: Counter[str] | None = None) -> Iterator[bytes]:
    """Yield replay lines (no trailing newline) in arrival order, a day at a time.

    ``summary``, when given, is filled as lines are yielded (complete once exhausted):
    ``lines``; ``events:<topic>`` (distinct valid events); ``noise:<kind>``;
    ``malformed`` and ``malformed:<kind>``; ``lapse:<kind>``; ``city:<fact>`` (with
    ``round``, ``city:round_*``: see streams/sim/rounds.py; with ``inspections``, findings and
    what became of them: streams/sim/inspections.py); with ``receipts``, ``receipts:<habit>``
    (the lines each source's habit received: streams/sim/receipts.py).
    """
    tally: Counter[str] = summary if summary is not None else Counter()
    master = random.Random(config.seed)
    city_rng, noise_rng = (
        random.Random(master.getrandbits(64)),
        random.Random(master.getrandbits(64)),
    )
    clock = Clock(config.start)
    plan = None
    if config.round:
        from closedloop.streams.sim.rounds import RoundPlan

        plan = RoundPlan(random.Random(config.seed * 6271 + 7_368_787), config.days)
    city = City(
        city_rng,
        people=config.people,
        days=config.days,
        districts=config.districts,
        clock=clock,
        lapse=config.noise.lapse,
        identity=config.noise.identity,
        summary=tally,
        gates=Gates(random.Random(config.seed * 7919 + 104_729)) if config.gates else None,
        rounds=plan,
    )
    habits = None
    if config.receipts:
        from closedloop.streams.sim.receipts import Habits

        habits = Habits(random.Random(config.seed * 104_723 + 15_485_863), city, config.days,
                        tally)
    rounds_of_inspection = None
    if config.inspections:
        from closedloop.streams.sim.inspections import Inspections

        rounds_of_inspection = Inspections(random.Random(config.seed * 7_727 + 2_750_159), city,
                                           config.days, tally)
    pending: list[tuple[int, int, bytes]] = []  # (arrival, sequence, line), sorted
    sequence = 0
    turns = itertools.count()  # malformed kinds take turns across the whole run
    for day in range(config.days):
        batch = city.day(day)
        if rounds_of_inspection is not None:
            rounds_of_inspection.day(city, day)
        noisy = _arrivals(batch, city, config.noise, noise_rng, tally, turns, habits)
        for arrival, line in noisy:
            pending.append((arrival, sequence, line))
            sequence += 1
        pending.sort()
        # Later days only add events at or after their own start, so this much is final;
        # what arrives later (late lines, next-day results) waits in ``pending``. Nearly: a
        # traveller's visit may fall before the day that makes it. With receipts, whose
        # received_at says where a line sits in the file, a day more waits, so the file is
        # in arrival order exactly (a city without them keeps its bytes).
        flushed = day + 1 if habits is None else day
        ready = bisect.bisect_left(pending, (clock.day_start(flushed),))
        yield from _counted(pending[:ready], tally)
        del pending[:ready]
    if plan is not None:
        plan.finish(city)
    yield from _counted(pending, tally)


def _counted(lines: list[tuple[int, int, bytes]], tally: Counter[str]) -> Iterator[bytes]:
    tally["lines"] += len(lines)
    for _, _, line in lines:
        yield line


# -- transport noise ---------------------------------------------------------------------------


def _arrivals(
    batch: DayBatch,
    city: City,
    noise: Noise,
    rng: random.Random,
    tally: Counter[str],
    turns: Iterator[int],
    habits: Habits | None = None,
) -> list[tuple[int, bytes]]:
    """When each line of the batch reaches the file, with late, repeated and bad lines added;
    with ``habits``, the line's sources' habits move it and it says when it arrived."""
    emissions = batch.emissions
    arrival = [t for t, _, _ in emissions]
    held = _results_first(batch, arrival, noise.result_first, rng, tally)
    stamp = None if habits is None else city.clock.stamp
    out: list[tuple[int, bytes]] = []
    for i, (t, topic, value) in enumerate(emissions):
        at = arrival[i]
        if i not in held and rng.random() < noise.late:
            at += _lateness(rng)
            arrival[i] = at
            tally["noise:late"] += 1
        if habits is not None:
            at = arrival[i] = habits.arrival(t, topic, value, at)
        line = _envelope(topic, value, stamp and stamp(at))
        out.append((at, line))
        if rng.random() < noise.duplicate:
            again = at + rng.randint(MINUTE, HOUR)  # a re-send is received anew
            out.append((again, line if stamp is None else _envelope(topic, value, stamp(again))))
            tally["noise:duplicate"] += 1
    bad = stochastic_round(rng, len(out) * noise.malformed)
    for _ in range(bad):
        out.append(_malformed_line(next(turns), _Bad(city, batch, rng, arrival, stamp), tally))
    return out


def _lateness(rng: random.Random) -> int:
    if rng.random() < _LATE_WITHIN_LATENESS:
        return rng.randint(5, 5 * MINUTE)
    return rng.randint(5 * MINUTE + 1, 30 * MINUTE)


def _results_first(
    batch: DayBatch, arrival: list[int], rate: float, rng: random.Random, tally: Counter[str]
) -> set[int]:
    """Hold some tubes' samplings until after their result: the upload that comes last."""
    held: set[int] = set()
    for tube in batch.mass_tubes:
        if tube.labs and rng.random() < rate:
            last = max(batch.emissions[i][0] for i in tube.labs)
            for i in tube.samplings:
                arrival[i] = last + rng.randint(MINUTE, 30 * MINUTE)
                held.add(i)
            tally["noise:result_first"] += 1
    return held


# -- malformed lines ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Bad:
    """What a malformed-line builder needs: the city, the day's batch, and when it arrives."""

    city: City
    batch: DayBatch
    rng: random.Random
    arrival: list[int]  # of the batch's emissions, transport noise included
    stamp: Callable[[int], str] | None = None  # with receipts: each line says when it came
    t: int = 0

    def __post_init__(self) -> None:
        self.t = self.city.clock.day_start(self.batch.day) + self.rng.randrange(86400)

    def line(self, topic: str, value: object, at: int | None = None) -> tuple[int, bytes]:
        """The envelope arriving at ``at`` (default ``t``), received then with receipts."""
        at = self.t if at is None else at
        return at, _envelope(topic, value, None if self.stamp is None else self.stamp(at))


def _malformed_line(turn: int, bad: _Bad, tally: Counter[str]) -> tuple[int, bytes]:
    """One bad line; the kinds take turns so that every kind shows up."""
    kind = MALFORMED_KINDS[turn % len(MALFORMED_KINDS)]
    made = _BUILDERS[kind](bad)
    if made is None:  # no full pool today to overflow: another kind stands in
        kind = "unknown_topic"
        made = _unknown_topic(bad)
    tally["malformed"] += 1
    tally[f"malformed:{kind}"] += 1
    return made


def _specimen(bad: _Bad, topic: str) -> dict[str, Any]:
    """A plausible valid event of ``topic`` for a malformed line to spoil."""
    city, rng, t = bad.city, bad.rng, bad.t
    person = rng.randrange(len(city.person_ids))
    site = city.sites[city.home[person]]
    value: dict[str, Any] = {"event_id": city.next_id("bad"), "occurred_at": city.clock.stamp(t)}
    pid = city.person_ids[person]
    if topic == "sampling":
        value.update(
            person_id=pid,
            tube_id=city.next_id("tb"),
            site_id=site.site_id,
            district=site.district,
            pool_size=10,
            site_lat=site.lat,
            site_lon=site.lon,
        )
    elif topic == "lab":
        value.update(
            tube_id=city.next_id("tb"),
            lab_id=rng.choice(city.labs),
            status="reported",
            result="negative",
        )
    elif topic == "travel":
        value.update(
            person_id=pid,
            district=site.district,
            arrived_at=city.clock.stamp(t - 5 * HOUR),
            origin="hangzhou",
            risk="outside_province",
        )
    elif topic == "followup":
        value.update(person_id=pid, kind="visit", worker_id=f"gw:{site.district}-01")
    else:
        value.update(
            person_id=pid, cohort=rng.choice(tuple(COHORTS)), district=site.district, active=True
        )
    return value


def _dump(obj: object) -> bytes:
    """JSON, copied to its exact size.

    orjson hands back its whole working buffer (about 4 KiB) however short the line; a day of
    lines waiting to be sorted would otherwise hold some 150 MB for a 50,000-person city.
    """
    return bytes(memoryview(orjson.dumps(obj)))


def _envelope(topic: str, value: object, received_at: str | None = None) -> bytes:
    if received_at is None:
        return _dump({"topic": topic, "value": value})
    return _dump({"topic": topic, "received_at": received_at, "value": value})


def _not_json(bad: _Bad) -> tuple[int, bytes]:
    whole = _envelope("sampling", _specimen(bad, "sampling"))
    return bad.t, whole[: bad.rng.randint(1, len(whole) - 1)]


def _not_object(bad: _Bad) -> tuple[int, bytes]:
    topic = bad.rng.choice(_SPECIMEN_TOPICS)
    return bad.t, _dump([{"topic": topic, "value": _specimen(bad, topic)}])


def _missing_field(bad: _Bad) -> tuple[int, bytes]:
    topic = bad.rng.choice(_SPECIMEN_TOPICS)
    value = _specimen(bad, topic)
    del value[bad.rng.choice(sorted(set(value) - _OPTIONAL))]
    return bad.line(topic, value)


def _wrong_type(bad: _Bad) -> tuple[int, bytes]:
    value = _specimen(bad, "sampling")
    value["pool_size"] = str(value["pool_size"])
    return bad.line("sampling", value)


def _unknown_enum(bad: _Bad) -> tuple[int, bytes]:
    value = _specimen(bad, "travel")
    value["risk"] = "extreme"
    return bad.line("travel", value)


def _naive_timestamp(bad: _Bad) -> tuple[int, bytes]:
    topic = bad.rng.choice(_SPECIMEN_TOPICS)
    value = _specimen(bad, topic)
    value["occurred_at"] = bad.city.clock.stamp(bad.t, offset=False)
    return bad.line(topic, value)


def _fake_raw_identifier(rng: random.Random) -> str:
    """Clearly fake: region 999999 does not exist, and no mobile number starts with 100."""
    if rng.random() < 0.5:
        birth = f"19{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        return f"999999{birth}{rng.randint(0, 999):03d}{rng.choice('0123456789X')}"
    return f"100{rng.randint(0, 99_999_999):08d}"


def _raw_identifier(bad: _Bad) -> tuple[int, bytes]:
    topic = bad.rng.choice(("sampling", "travel", "followup", "cohort"))
    value = _specimen(bad, topic)
    value["person_id"] = _fake_raw_identifier(bad.rng)
    return bad.line(topic, value)


def _unknown_cohort(bad: _Bad) -> tuple[int, bytes]:
    value = _specimen(bad, "cohort")
    value["cohort"] = _UNKNOWN_COHORT
    return bad.line("cohort", value)


def _unknown_topic(bad: _Bad) -> tuple[int, bytes]:
    return bad.line(_UNKNOWN_TOPIC, _specimen(bad, "sampling"))


def _pool_overflow(bad: _Bad) -> tuple[int, bytes] | None:
    """A valid sampling arriving as an 11th member of a full 10-in-1 tube."""
    full = [tube for tube in bad.batch.mass_tubes if len(tube.members) == tube.pool_size > 1]
    if not full:
        return None
    tube = bad.rng.choice(full)
    city = bad.city
    person = bad.rng.randrange(len(city.person_ids))
    while person in tube.members:
        person = bad.rng.randrange(len(city.person_ids))
    t = tube.collected + bad.rng.randint(0, 4 * MINUTE)
    value = dict(bad.batch.emissions[tube.samplings[0]][2])
    value.update(
        event_id=city.next_id("sa"),
        occurred_at=city.clock.stamp(t),
        person_id=city.person_ids[person],
    )
    last_member = max(bad.arrival[i] for i in tube.samplings)
    return bad.line("sampling", value, last_member + bad.rng.randint(1, 4 * MINUTE))


_BUILDERS: Final[dict[str, Callable[[_Bad], tuple[int, bytes] | None]]] = {
    "not_json": _not_json,
    "not_object": _not_object,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "unknown_enum": _unknown_enum,
    "naive_timestamp": _naive_timestamp,
    "raw_identifier": _raw_identifier,
    "unknown_cohort": _unknown_cohort,
    "pool_overflow": _pool_overflow,
    "unknown_topic": _unknown_topic,
}


# -- summary -----------------------------------------------------------------------------------


def format_summary(summary: Mapping[str, int]) -> str:
    """One line for humans: lines by topic, then each kind of noise."""
    topics = ", ".join(
        f"{key.split(':', 1)[1]} {summary[key]:,}"
        for key in sorted(summary)
        if key.startswith("events:")
    )
    lapses = sum(n for key, n in summary.items() if key.startswith("lapse:"))
    identity = summary.get("noise:identity_far", 0) + summary.get("noise:identity_many", 0)
    rounds = ""
    if "city:round_in_scope" in summary:
        rounds = (
            f"; round: {summary['city:round_in_scope']:,} in scope, sampled "
            f"{summary.get('city:round_sampled', 0):,}, missed "
            f"{summary.get('city:round_missed', 0):,}, caught up "
            f"{summary.get('city:round_caught_up', 0):,}, not on the roster "
            f"{summary.get('city:round_not_on_roster', 0):,}"
        )
    supervision = ""
    if "city:findings" in summary:
        supervision = (
            f"; supervision: {summary['city:findings']:,} findings, rectified on time "
            f"{summary.get('city:rectified_on_time', 0):,}, late "
            f"{summary.get('city:rectified_late', 0):,}, never "
            f"{summary.get('city:never_rectified', 0):,}, still open at the end "
            f"{summary.get('city:open_at_end', 0):,}, rechecks failed "
            f"{summary.get('city:rechecks_failed', 0):,}, found again "
            f"{summary.get('city:repeat_findings', 0):,}"
        )
    habits = ""
    if any(key.startswith("receipts:") for key in summary):
        habits = (
            f"; entered by habit: noon site {summary.get('receipts:noon_site', 0):,}, stalled "
            f"lab {summary.get('receipts:stalled_lab', 0):,}, night worker "
            f"{summary.get('receipts:night_worker', 0):,}"
        )
    return (
        f"{summary.get('lines', 0):,} lines ({topics}); noise: late "
        f"{summary.get('noise:late', 0):,}, duplicate {summary.get('noise:duplicate', 0):,}, "
        f"result-first {summary.get('noise:result_first', 0):,} tubes, malformed "
        f"{summary.get('malformed', 0):,}, identity misuse {identity:,} persons, "
        f"lapses {lapses:,}{rounds}{supervision}{habits}"
    )
