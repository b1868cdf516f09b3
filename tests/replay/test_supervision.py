"""Supervision (CONTRACT.md v1.2 §4) at its edges, through replay and through the worker's
partitioned path on the in-memory bus (four partitions, four interleavings): a rectification
exactly at the window's end, a recheck that fails twice, a repeat exactly ``repeat_window``
after the first finding, records in reverse order within the lateness, a duplicate
finding_id; escalation stopped by an operator's action only; the daily report's columns.
The broker's worker runs the same file in ``tests/integration/test_worker_supervision.py``.
"""

from __future__ import annotations

import io
from collections import defaultdict
from functools import cache
from typing import Any

import msgspec
import orjson
import pytest
from helpers import action, at, epoch, supervision_edges, to_line

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.engine.bus import PartitionedBus

T0 = "2022-09-06T09:00:00+08:00"
UNTIL = at(T0, days=100)
ORDERS = ("fifo", "reverse", "random-1", "random-2")
HOURS = 3600


@cache
def _lines(*extra: bytes) -> tuple[bytes, ...]:
    """The edges' file, with ``extra`` lines put in their place in event time."""
    events = supervision_edges(T0)
    for line in extra:
        when = orjson.loads(line)["value"]["occurred_at"]
        place = next((i for i, e in enumerate(events) if e["value"]["occurred_at"] > when),
                     len(events))
        events.insert(place, orjson.loads(line))
    return tuple(to_line(event) for event in events)


@cache
def _replayed(*extra: bytes) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    alerts, escalations, reports = io.BytesIO(), io.BytesIO(), io.BytesIO()
    replay_lines(_lines(*extra), default_policy(), until=epoch(UNTIL), alerts_out=alerts,
                 escalations_out=escalations, reports_out=reports)
    return tuple(alerts.getvalue().splitlines()), tuple(
        escalations.getvalue().splitlines()), tuple(reports.getvalue().splitlines())


def _alerts() -> dict[str, list[tuple[str, int]]]:
    """Each unit's alerts as (kind, seconds after T0 of due_at)."""
    by_unit: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for line in _replayed()[0]:
        alert = orjson.loads(line)
        by_unit[alert["subject"]].append((alert["kind"], epoch(alert["due_at"]) - epoch(T0)))
    return by_unit


class TestEdgesThroughReplay:
    def test_a_rectification_exactly_at_the_windows_end_is_in_time(self) -> None:
        assert _alerts()["u-rect-end"] == [("recheck_missed", (24 + 168) * HOURS)]
        assert _alerts()["u-rect-late"] == [("rectification_overdue", 24 * HOURS),
                                             ("recheck_missed", (24 + 168) * HOURS + 1)]

    def test_a_recheck_that_fails_twice_raises_twice_and_a_pass_closes_it(self) -> None:
        assert _alerts()["u-fail-twice"] == [("recheck_failed", 2 * HOURS),
                                              ("recheck_failed", 4 * HOURS)]

    def test_a_look_back_nobody_made(self) -> None:
        assert _alerts()["u-no-recheck"] == [("recheck_missed", (2 + 168) * HOURS)]

    def test_a_repeat_exactly_repeat_window_after_the_first_finding(self) -> None:
        assert _alerts()["u-repeat"] == [("repeat_offender", 90 * 24 * HOURS)]
        repeat = next(orjson.loads(line) for line in _replayed()[0]
                      if b'"u-repeat"' in line)
        assert repeat["details"] == {"finding_id": "r2", "category": "venue_code",
                                     "unit_kind": "venue", "findings_in_window": 2,
                                     "previous": ["r1"]}
        assert "u-no-repeat" not in _alerts()  # a second later: out of the window

    def test_a_duplicate_finding_id_is_ignored(self) -> None:
        # the critical duplicate would have lapsed at 24 h 11 min: the minor one is kept
        assert _alerts()["u-dup"] == [("recheck_missed", (30 + 168) * HOURS)]

    def test_what_is_ignored_is_counted(self) -> None:
        stats = replay_lines(_lines(), default_policy(), until=epoch(UNTIL)).stats
        assert stats["supervision:duplicate_findings"] == 1  # u-dup
        assert stats["supervision:orphan_records"] == 1  # u-orphan's rectification
        assert stats["supervision:rectifications_ignored"] == 1  # u-rect-twice's second
        assert "u-rect-twice" not in _alerts()
        assert "u-orphan" not in _alerts()

    def test_records_in_reverse_order_within_the_lateness_give_the_same_alerts(self) -> None:
        in_order = _alerts()["u-in-order"]
        assert in_order == [("recheck_failed", 30 * HOURS + 240),
                            ("rectification_overdue", (30 + 72) * HOURS + 240)]
        assert _alerts()["u-reversed"] == in_order

    def test_escalation_is_stopped_by_an_operators_action_only(self) -> None:
        alerts, escalations, _ = _replayed()

        def levels(lines: tuple[bytes, ...], alert_id: str) -> list[int]:
            return [e["details"]["level"] for e in map(orjson.loads, lines)
                    if e["details"]["alert_id"] == alert_id]

        # rectified a second late: the rectification does not stop it, nor does time
        late = next(orjson.loads(line) for line in alerts if b'"u-rect-late"' in line)
        assert levels(escalations, late["alert_id"]) == [2, 3]
        for unit in ("u-no-recheck", "u-repeat", "u-dup"):
            alert = next(orjson.loads(line) for line in alerts if f'"{unit}"'.encode() in line)
            assert levels(escalations, alert["alert_id"]) == [2, 3], unit
        ack = to_line(action(late["alert_id"], "u-rect-late", at(late["due_at"], hours=1)))
        acted = _replayed(ack)[1]
        assert levels(acted, late["alert_id"]) == []
        assert len(acted) == len(escalations) - 2

    def test_the_daily_report_counts_findings_in_their_district(self) -> None:
        reports = {(r["district"], r["date"]): r for r in map(orjson.loads, _replayed()[2])}
        first, second = reports[("district-a", "2022-09-06")], reports[
            ("district-a", "2022-09-07")]
        # seven findings in district-a on the first day (the duplicate not counted), one in b
        assert (first["findings_new"], first["rechecks_failed"]) == (7, 2)
        # open at the cut-off: u-rect-end, u-no-recheck, u-dup (the others passed a recheck)
        assert first["findings_open"] == 3
        assert reports[("district-b", "2022-09-06")]["findings_new"] == 1
        assert (second["findings_new"], second["rechecks_failed"]) == (2, 2)
        assert reports[("district-b", "2022-09-07")]["rectifications_overdue"] == 1
        repeat_day = reports[("district-a", "2022-12-05")]
        assert (repeat_day["findings_new"], repeat_day["repeat_offenders"]) == (2, 1)


def _encoded(items: list[Any]) -> list[bytes]:
    return [msgspec.json.encode(item) for item in items]


@pytest.mark.parametrize("order", ORDERS)
def test_the_partitioned_bus_equals_replay(order: str) -> None:
    bus = PartitionedBus(default_policy(), partitions=4, order=order)
    bus.produce(_lines())
    bus.tick(epoch(UNTIL))
    out = bus.run()
    alerts, escalations, reports = _replayed()
    sent = _encoded(out.alerts)
    assert len(sent) == len(set(sent)) and set(sent) == set(alerts)
    assert set(_encoded(out.escalations)) == set(escalations)
    assert sorted(_encoded(out.reports)) == sorted(reports)
