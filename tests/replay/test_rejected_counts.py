"""Rejected input counts in the same daily report through replay and every partitioning of
the worker (CONTRACT.md v1.2 §4 "Accuracy"; the rule in docs/RULES.md "Data entry").

A rejected value naming a valid district counts at its own occurred_at when it has a
plausible one (one without an offset read in the policy's zone), else one second after the
clock it is read at, held until that clock has started. The file puts rejected lines on
partitions no valid record reaches, so that their clocks have not started when they are
read (only ``clock --until`` starts them), before and after the valid lines that start
replay's one clock. Replay and the in-memory bus (four partitions, four interleavings) must
publish the same reports, and no rejected line may be lost.
"""

from __future__ import annotations

import io
import time
from typing import Any

import msgspec
import orjson
import pytest
from helpers import Envelope, at, epoch, lab, sampling, to_line, travel

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.engine.bus import PartitionedBus
from closedloop.streams.engine.topology import partition_of

T0 = "2022-09-06T09:00:00+08:00"
BETWEEN = "2022-09-06T21:00:00+08:00"  # a tick before the day's 22:00 cut-off
UNTIL = "2022-09-08T12:00:00+08:00"
PARTITIONS = 4
ORDERS = ("fifo", "reverse", "random-1", "random-2")
NOW = time.time()


def _keys(prefix: str, partition: int, count: int) -> list[str]:
    """``count`` keys ``<prefix>-<n>`` that the bus sends to ``partition``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        key = f"{prefix}-{n:03d}"
        if partition_of(key, PARTITIONS) == partition:
            found.append(key)
        n += 1
    return found


def _valid(day: int) -> list[Envelope]:
    """Samplings and lab records of tubes all on partition 0: its clock starts, the other
    partitions' do not."""
    tubes = _keys(f"tb-valid{day}", 0, 4)
    start = at(T0, days=day)
    lines: list[Envelope] = []
    for i, tube in enumerate(tubes):
        lines.append(sampling(f"pe-valid{day}-{i}", tube, at(start, minutes=30 * i),
                              event_id=f"valid{day}-s{i}"))
        lines.append(lab(tube, at(start, minutes=30 * i + 10), event_id=f"valid{day}-l{i}"))
    return lines


def _rejected() -> list[bytes]:
    """Rejected lines naming a district, their tubes and persons on partitions no valid
    record reaches: with an occurred_at of their own (one of the next day), one without an
    offset, and one without any."""
    tubes = _keys("tb-bad", 2, 3)
    spoiled = sampling("pe-bad-0", tubes[0], at(T0, hours=1), event_id="bad-type")
    spoiled["value"]["pool_size"] = "ten"
    naive = sampling("pe-bad-1", tubes[1], at(T0, hours=2), event_id="bad-naive")
    naive["value"]["occurred_at"] = "2022-09-06T11:00:00"
    timeless = sampling("pe-bad-2", tubes[2], at(T0, hours=3), event_id="bad-timeless")
    del timeless["value"]["occurred_at"]
    person = _keys("pe-bad-travel", 3, 1)[0]
    tomorrow = travel(person, at(T0, days=1), district="district-b", event_id="bad-risk")
    tomorrow["value"]["risk"] = "extreme"
    return [to_line(item) for item in (spoiled, naive, timeless, tomorrow)]


def _parts(rejected_first: bool) -> tuple[list[bytes], list[bytes]]:
    valid = [to_line(item) for item in _valid(0)]
    first = [*_rejected(), *valid] if rejected_first else [*valid, *_rejected()]
    return first, [to_line(item) for item in _valid(1)]


def _replayed(rejected_first: bool) -> tuple[list[dict[str, Any]], int]:
    first, later = _parts(rejected_first)
    reports, letters = io.BytesIO(), io.BytesIO()
    replay_lines((*first, *later), default_policy(), until=epoch(UNTIL),
                 reports_out=reports, deadletter_out=letters, received_at=NOW)
    return ([orjson.loads(line) for line in reports.getvalue().splitlines()],
            len(letters.getvalue().splitlines()))


def _rejected_by_day(reports: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {(r["district"], r["date"]): r["entries_rejected"] for r in reports
            if r["entries_rejected"]}


@pytest.mark.parametrize("rejected_first", [True, False])
def test_replay_counts_each_rejected_line_in_the_day_its_value_names(
        rejected_first: bool) -> None:
    reports, letters = _replayed(rejected_first)
    assert letters == 4
    # the wrong type and the naive time at their own instants, the line without any as
    # read (held, when read first, until the first valid line starts the clock): day one;
    # the travel whose occurred_at is tomorrow: day two, though read on day one
    assert _rejected_by_day(reports) == {("district-a", "2022-09-06"): 3,
                                         ("district-b", "2022-09-07"): 1}


@pytest.mark.parametrize("rejected_first", [True, False])
@pytest.mark.parametrize("order", ORDERS)
def test_partitions_whose_clock_has_not_started_count_them_as_replay_does(
        order: str, rejected_first: bool) -> None:
    first, later = _parts(rejected_first)
    bus = PartitionedBus(default_policy(), partitions=PARTITIONS, order=order,
                         received_at=NOW)
    bus.produce(first)
    bus.tick(epoch(BETWEEN))
    bus.run()
    bus.produce(later)
    bus.tick(epoch(UNTIL))
    out = bus.run()
    published = [orjson.loads(msgspec.json.encode(report)) for report in out.reports]
    replayed, letters = _replayed(rejected_first)
    assert len(out.dead_letters) == letters
    assert _rejected_by_day(published) == _rejected_by_day(replayed)
    assert sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in published) == sorted(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in replayed)
