"""What ``bench live`` feeds, and how it matches alerts to their causes (no broker)."""

from __future__ import annotations

import math
from collections import Counter

import orjson
import pytest

from closedloop.schemas.decode import Rejection, decode_event
from closedloop.streams.bench.live_feed import LiveFeed, Shape, percentile, shanghai_iso

T0 = 1_662_422_400  # 2022-09-06T08:00:00+08:00


def feed_for(seconds: int, rate: int, shape: Shape | None = None) -> tuple[LiveFeed, list]:
    """``rate`` records a second for ``seconds``, as the driver paces them."""
    feed = LiveFeed(shape or Shape(), seed=3, tag="lv")
    records = [feed.next(T0 + n / rate) for n in range(seconds * rate)]
    return feed, records


def test_every_record_is_a_valid_contract_event_keyed_by_its_tube() -> None:
    _, records = feed_for(60, 50)
    for record in records:
        event = decode_event(record.topic, record.value, received_at=T0 + 60)
        assert not isinstance(event, Rejection), event
        assert record.key == orjson.loads(record.value)["tube_id"].encode()
    assert {r.topic for r in records} == {"sampling", "lab"}


def test_a_day_in_shanghais_proportions_with_labs_following_the_swabs() -> None:
    shape = Shape()
    feed, records = feed_for(300, 100, shape)
    kinds = Counter(r.what for r in records)
    # nearly all tubes hold ten swabs; per tube about two lab records
    pools = Counter(t.pool for t in feed.tubes.values())
    assert pools[10] > 20 * pools[1] > 0
    # (the first report_after seconds have no lab records yet)
    lab_share = (kinds["received"] + kinds["reported"]) / len(records)
    steady = 2 * (1 - shape.lost_share) / shape.events_per_tube()
    assert steady * 0.8 < lab_share < steady
    # a normal tube: received 20 s and reported 40 s after its first collection
    for record in records:
        if record.what != "sampling" and record.tube.fate == "normal":
            after = shape.receive_after if record.what == "received" else shape.report_after
            at = orjson.loads(record.value)["occurred_at"]
            assert at == shanghai_iso(record.tube.start + after)


def test_lost_tubes_get_no_lab_record_and_late_ones_theirs_after_the_sla() -> None:
    shape = Shape(lost_share=0.2, late_share=0.2)
    feed, records = feed_for(200, 50, shape)
    lab_of: dict[str, list[str]] = {}
    for record in records:
        if record.topic == "lab":
            lab_of.setdefault(record.tube.tube_id, []).append(record.what)
    fates = Counter(t.fate for t in feed.tubes.values())
    assert fates["lost"] and fates["late"] and fates["normal"]
    for tube in feed.tubes.values():
        if tube.fate == "lost":
            assert tube.tube_id not in lab_of
        elif tube.start + shape.late_report_after < T0 + 200 - 1:
            assert lab_of[tube.tube_id] == ["received", "reported"]


def test_expected_alerts_are_those_due_by_the_end() -> None:
    shape = Shape(lost_share=0.1, late_share=0.1, positive_pool=0.2, single_share=0.3)
    end = T0 + 200
    feed, _ = feed_for(200, 50, shape)
    tubes = feed.tubes.values()
    reported = [t for t in tubes if t.result == "positive" and t.reported_at is not None]
    assert feed.expected(end) == Counter({
        "positive": sum(t.pool == 1 for t in reported),
        "pool_positive": sum(t.pool > 1 for t in reported),
        "lab_sla_breached":
            sum(t.fate != "normal" and t.start + 60 <= end for t in tubes)
            + sum(t.fate == "lost" and t.start + 120 <= end for t in tubes),
    })
    assert feed.expected(end)["positive"] > 0 and feed.expected(end)["pool_positive"] > 0


def test_an_alerts_cause_is_its_due_instant_or_the_hand_over_of_its_report() -> None:
    feed, records = feed_for(60, 50, Shape(single_share=1.0, positive_single=1.0))
    report = next(r for r in records if r.what == "reported")
    tube = report.tube
    assert tube.reported_at is not None
    positive = {"kind": "positive", "tube_id": tube.tube_id,
                "due_at": shanghai_iso(tube.reported_at)}
    # the report's time is its whole second; it was handed over a fraction later
    assert feed.cause(positive) == tube.reported_at
    breach = {"kind": "lab_sla_breached", "tube_id": tube.tube_id,
              "due_at": shanghai_iso(tube.start + 60)}
    assert feed.cause(breach) == tube.start + 60
    assert feed.cause({"kind": "test_missed", "due_at": shanghai_iso(T0)}) is None


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


@pytest.mark.parametrize("pool", [1, 10])
def test_a_tube_never_holds_more_swabs_than_its_pool(pool: int) -> None:
    _, records = feed_for(30, 50, Shape(single_share=1.0 if pool == 1 else 0.0))
    swabs = Counter(r.tube.tube_id for r in records if r.topic == "sampling")
    assert max(swabs.values()) == pool
