"""A county's risk levels (agents/shared.py): the as-of join answers as if every record were
kept, while the history holds one record a second and nothing from before the window the
join can still ask about, whatever the records and their order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop.agents.shared import Shared, apply_area, level_at
from closedloop.schemas.events import Area

KEEP: Final = 8 * 86400  # the default policy's state_retention
START: Final = datetime(2022, 9, 1, tzinfo=timezone(timedelta(hours=8)))
EPOCH: Final = int(START.timestamp())


def _area(n: int, seconds: float, level: str, event_id: str | None = None) -> Area:
    return Area(event_id=event_id or f"area-{n:07d}",
                occurred_at=START + timedelta(seconds=seconds), county="county-1",
                level=level)  # type: ignore[arg-type]


def _oracle(records: list[Area], instant: int) -> str:
    """The contract's rule over every record (ties: the larger event_id), asked at the
    instant the engine asks about: no earlier than ``KEEP`` before the latest record."""
    latest = max(int(r.occurred_at.timestamp()) for r in records)
    instant = max(instant, latest - KEEP)
    best: tuple[int, str] | None = None
    level = "low"
    for record in records:
        key = (int(record.occurred_at.timestamp()), record.event_id)
        if key[0] <= instant and (best is None or key > best):
            best, level = key, record.level
    return level


records_strategy = st.lists(
    st.tuples(st.integers(0, 20 * 86400), st.sampled_from(("high", "medium", "low")),
              st.integers(0, 30)),
    min_size=1, max_size=60)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(records=records_strategy, asks=st.lists(st.integers(-86400, 21 * 86400), max_size=20))
def test_levels_are_those_of_every_record_whatever_the_order(
    records: list[tuple[int, str, int]], asks: list[int],
) -> None:
    shared = Shared()
    areas = [_area(n, seconds, level, f"ev-{tag:02d}")
             for n, (seconds, level, tag) in enumerate(records)]
    applied: list[Area] = []
    for area in areas:
        if any(a.event_id == area.event_id for a in applied):
            continue  # de-duplicated upstream, by event_id
        apply_area(shared, area, KEEP)
        applied.append(area)
        for ask in asks:  # after every record, as the clock may pass an entry at any time
            assert level_at(shared, "county-1", EPOCH + ask, KEEP) == _oracle(applied,
                                                                               EPOCH + ask)


def test_a_county_flapping_ten_times_a_second_keeps_one_record_a_second() -> None:
    shared = Shared()
    for n in range(40_000):
        assert apply_area(shared, _area(n, n / 10, "high" if n % 2 else "low"), KEEP)
    history = shared.areas["county-1"]
    assert len(history) == 4_000
    # the record kept for each second is its last (the largest event_id): odd, high
    assert {entry.level for entry in history} == {"high"}
    assert level_at(shared, "county-1", EPOCH + 3_999, KEEP) == "high"


def test_the_history_holds_at_most_twice_the_window() -> None:
    # a record a minute for 20 days: 28,800 records, the window 8 days (11,520 minutes)
    shared = Shared()
    for n in range(28_800):
        apply_area(shared, _area(n, 60 * n, "high" if n % 2 else "low"), KEEP)
        assert len(shared.areas["county-1"]) <= 2 * KEEP // 60 + 2
    assert level_at(shared, "county-1", EPOCH + 60 * 28_799, KEEP) == "high"
    # an instant before the window: the level at the window's start
    start = 60 * 28_799 - KEEP
    assert level_at(shared, "county-1", EPOCH, KEEP) == level_at(
        shared, "county-1", EPOCH + start, KEEP) == ("high" if start // 60 % 2 else "low")


def test_a_record_already_known_or_beaten_at_its_second_changes_nothing() -> None:
    shared = Shared()
    assert apply_area(shared, _area(0, 10, "high", "ev-b"), KEEP)
    assert not apply_area(shared, _area(1, 10, "high", "ev-b"), KEEP)  # redelivered
    assert not apply_area(shared, _area(2, 10.5, "low", "ev-a"), KEEP)  # smaller event_id
    assert level_at(shared, "county-1", EPOCH + 10, KEEP) == "high"
    assert apply_area(shared, _area(3, 10.9, "low", "ev-c"), KEEP)  # larger: it wins
    assert level_at(shared, "county-1", EPOCH + 10, KEEP) == "low"
    assert len(shared.areas["county-1"]) == 1
