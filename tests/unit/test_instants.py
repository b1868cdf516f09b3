"""epoch_seconds must equal int(instant.timestamp()) for every instant msgspec can decode."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from closedloop.schemas.instants import RECENT, epoch_seconds, recent_objects, shared

EDGES = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
    datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2022, 9, 6, 6, 30, 28, 999_999, tzinfo=timezone(timedelta(hours=8))),
    datetime(2106, 2, 7, 6, 28, 15, 999_999, tzinfo=UTC),  # just below 2^32 s
    datetime(2242, 3, 16, 12, 56, 31, 999_999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
    datetime(2022, 3, 27, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),  # a zone with rules
]


@pytest.mark.parametrize("instant", EDGES, ids=str)
def test_edges(instant: datetime) -> None:
    assert epoch_seconds(instant) == int(instant.timestamp())


def test_random_instants_in_every_kind_of_offset() -> None:
    rng = random.Random(7)
    low, high = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
    span = int((high - low).total_seconds())
    for _ in range(20_000):
        offset = timedelta(minutes=rng.randrange(-1439, 1440))
        instant = (low + timedelta(seconds=rng.randrange(span),
                                   microseconds=rng.choice([0, 1, 500_000, 999_999,
                                                            rng.randrange(1_000_000)])))
        instant = instant.astimezone(timezone(offset))
        assert epoch_seconds(instant) == int(instant.timestamp()), instant


@pytest.mark.parametrize("center", [0, 1 << 32, 1 << 33], ids=["epoch", "2^32 s", "2^33 s"])
def test_around_the_boundaries_of_the_shortcut(center: int) -> None:
    rng = random.Random(center)
    for _ in range(5_000):
        offset = timezone(timedelta(minutes=rng.randrange(-1439, 1440)))
        instant = datetime.fromtimestamp(center, UTC) + timedelta(
            seconds=rng.randrange(-200_000, 200_000), microseconds=rng.randrange(1_000_000))
        instant = instant.astimezone(offset)
        assert epoch_seconds(instant) == int(instant.timestamp()), instant


def test_one_int_object_stands_for_a_recent_instant() -> None:
    at = datetime(2022, 9, 6, 6, 30, 28, tzinfo=timezone(timedelta(hours=8)))
    first = epoch_seconds(at)
    again = epoch_seconds(at.astimezone(UTC))
    assert again == first and again is first  # state keeps one object, not a copy a fact
    computed = int(str(first))  # an equal int made apart
    assert shared(computed) is first
    for n in range(RECENT):  # past RECENT other instants: equal, if no longer the object
        shared(first + 1 + n)
    assert shared(first) == first


def test_a_recent_value_stays_one_object_when_the_table_fills_up() -> None:
    """Forgetting every value at once when the table is full would forget those just seen
    too: the worker's person stage would copy the instants its tube stage still holds."""
    one = recent_objects(4)
    kept = one(int("1662400000"))
    for n in range(4):  # the table fills up and starts a new one
        one(1_662_500_000 + n)
    assert one(int("1662400000")) is kept
    for n in range(20):  # long forgotten: an equal value, not necessarily the object
        one(1_662_600_000 + n)
    assert one(int("1662400000")) == kept
