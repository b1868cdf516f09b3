"""A person's samples keep one object per site coordinate and instant (agents/person.py):
forwards decoded from the tube stage's records bring fresh floats and ints each, and a city
keeps a sample or two for every person."""

from __future__ import annotations

import math

import msgspec
from helpers import T0, epoch, policy

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context
from closedloop.agents.state import PersonState, Sampled
from closedloop.streams.engine.topology import PERSON

_decode = msgspec.json.Decoder(Sampled).decode


def _forwarded(at: int, tube: str, lat: float, lon: float) -> Sampled:
    """A Sampled as the person stage gets it from a pack: decoded, its numbers new objects."""
    return _decode(msgspec.json.encode(
        Sampled(at=at, tube=tube, pool=1, site="site:a-01", lat=lat, lon=lon, district="a")))


def _samples(*messages: Sampled) -> dict[str, PersonState]:
    rules = policy()
    ctx = Context(rules, Calendar(rules.zone, rules.daily_cutoff), epoch(T0))
    table: dict[str, PersonState] = {}
    for n, message in enumerate(messages):
        PERSON.apply(ctx, table, f"p:{n:012d}", message, fire=False)
    return table


def test_samples_at_one_site_share_its_coordinates_and_instants() -> None:
    at = epoch(T0)
    first, second = _forwarded(at, "tb-1", 31.2304, 121.4737), \
        _forwarded(at, "tb-2", 31.2304, 121.4737)
    assert first.lat is not second.lat and first.at is not second.at  # decoded apart
    table = _samples(first, second)
    one, two = (table[key].samples for key in sorted(table))
    assert one is not None and two is not None
    assert one[0].lat == 31.2304 and one[0].lon == 121.4737 and one[0].at == at
    assert one[0].lat is two[0].lat and one[0].lon is two[0].lon and one[0].at is two[0].at


def test_a_zero_coordinate_keeps_its_sign() -> None:
    table = _samples(_forwarded(epoch(T0), "tb-1", 0.0, -0.0),
                     _forwarded(epoch(T0), "tb-2", -0.0, 0.0))
    one, two = (table[key].samples for key in sorted(table))
    assert one is not None and two is not None
    lat, lon = one[0].lat, one[0].lon
    assert lat is not None and lon is not None
    assert math.copysign(1, lat) == 1 and math.copysign(1, lon) == -1
    assert two[0].lat is not None and math.copysign(1, two[0].lat) == -1
