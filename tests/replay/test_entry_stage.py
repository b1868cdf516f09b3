"""Data entry (CONTRACT.md v1.2 §4 "Data entry") at its edges, through replay and through the
worker's partitioned path on the in-memory bus (four partitions, four interleavings): exactly
``late_share``, exactly ``late_entries_min``, a lag of exactly ``entry_within``, a silence
ended one second before it would begin, records arriving after the cut-off, a
``received_at`` without offset and one beyond the skew; the report's entry columns and the
escalations. The broker's worker runs the same file in
``tests/integration/test_worker_entry.py``.
"""

from __future__ import annotations

import io
import time
from functools import cache
from typing import Any

import msgspec
import orjson
import pytest
from helpers import at, entry_edges, epoch, to_line

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.engine.bus import PartitionedBus

T0 = "2022-09-06T09:00:00+08:00"
UNTIL = at(T0, days=3)
CUTOFF_1 = "2022-09-06T22:00:00+08:00"
CUTOFF_2 = "2022-09-07T22:00:00+08:00"
ORDERS = ("fifo", "reverse", "random-1", "random-2")
NOW = time.time()  # the run's receipt: replay's and the bus's alike


@cache
def _parts() -> tuple[tuple[bytes, ...], tuple[bytes, ...], str]:
    first, later, between = entry_edges(T0)
    return tuple(map(to_line, first)), tuple(map(to_line, later)), between


@cache
def _replayed() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                         list[dict[str, Any]], dict[str, int]]:
    first, later, _ = _parts()
    alerts, escalations, reports, letters = (io.BytesIO(), io.BytesIO(), io.BytesIO(),
                                             io.BytesIO())
    result = replay_lines((*first, *later), default_policy(), until=epoch(UNTIL),
                          alerts_out=alerts, escalations_out=escalations, reports_out=reports,
                          deadletter_out=letters, received_at=NOW)
    alerts_, escalations_, reports_, letters_ = (
        [orjson.loads(line) for line in out.getvalue().splitlines()]
        for out in (alerts, escalations, reports, letters))
    return alerts_, escalations_, reports_, letters_, dict(result.stats)


def _of(kind: str) -> dict[str, dict[str, Any]]:
    return {a["subject"]: a for a in _replayed()[0] if a["kind"] == kind}


def test_a_source_is_judged_at_exactly_late_share_and_late_entries_min() -> None:
    late = _of("late_entries")
    share = late["sampling:site-share"]  # 2 late of exactly 10
    assert share["due_at"] == CUTOFF_1 and share["district"] == "district-a"
    assert share["details"] == {"topic": "sampling", "source": "site-share", "entries": 10,
                                "late": 2, "late_share": 0.2, "lag_p90_minutes": 180.0,
                                "worst_lag_minutes": 180.0}
    assert "sampling:site-below" not in late  # 2 of 11: under the share
    assert "sampling:site-few" not in late  # 9 records, every one late: under the minimum


def test_a_lag_of_exactly_entry_within_is_on_time() -> None:
    late = _of("late_entries")
    assert "sampling:site-within" not in late
    over = late["sampling:site-over"]["details"]
    assert (over["late"], over["late_share"], over["worst_lag_minutes"]) == (10, 1.0, 120.0)


def test_a_grid_workers_night_is_late_by_the_followup_window() -> None:
    night = _of("late_entries")["followup:gw-night"]
    assert night["district"] is None and night["details"]["late"] == 10


def test_records_read_after_the_cutoff_count_in_the_next_day() -> None:
    after = _of("late_entries")["sampling:site-after"]
    assert after["due_at"] == CUTOFF_2 and after["details"]["entries"] == 10
    assert set(_of("late_entries")) == {"sampling:site-share", "sampling:site-over",
                                        "followup:gw-night", "sampling:site-after"}


def test_a_silence_ended_a_second_before_it_begins_raises_nothing() -> None:
    silent = _of("lab_silent")
    assert set(silent) == {"lab-late", "lab-stuck"}  # not lab-ended, not lab-exact
    assert silent["lab-late"]["due_at"] == at(T0, hours=3)
    assert silent["lab-late"]["details"] == {"pending_tubes": 1, "last_reported_at": None}
    assert silent["lab-late"]["tube_id"] is None and silent["lab-late"]["district"] is None


def test_a_lab_reporting_again_ends_its_escalation_and_a_late_source_needs_an_operator(
) -> None:
    escalated = {(e["details"]["alert_id"], e["details"]["level"]) for e in _replayed()[1]}
    silent, late = _of("lab_silent"), _of("late_entries")
    assert not any(alert_id == silent["lab-late"]["alert_id"] for alert_id, _ in escalated)
    assert {(silent["lab-stuck"]["alert_id"], 2), (silent["lab-stuck"]["alert_id"], 3),
            (late["sampling:site-share"]["alert_id"], 3)} <= escalated


def test_bad_receipts_are_dead_lettered_and_counted_where_a_producer_would_send_them(
) -> None:
    letters = {letter["reason"] for letter in _replayed()[3]}
    assert "implausible_time" in letters and len(_replayed()[3]) == 2
    reports = {(r["district"], r["date"]): r for r in _replayed()[2]}
    first, second = reports[("district-a", "2022-09-06")], reports[("district-a", "2022-09-07")]
    # day one: every sampling of known lag swabbed before the cut-off but site-after's,
    # read after it
    assert (first["entries"], first["entries_late"], first["entries_rejected"]) == (50, 23, 0)
    assert first["entry_lag_p90_minutes"] == 180.0
    # day two: site-after's ten (their report had gone), site-clock's two; the receipt
    # beyond the skew is rejected input of district-a, the one without an offset was never
    # sent
    assert (second["entries"], second["entries_late"], second["entries_rejected"]) == (
        12, 10, 1)
    stats = _replayed()[4]
    # every applied line with a received_at: the first part's 68, the second's 11
    assert stats["entries_known_lag"] == 79
    assert stats["entries_late"] == 2 + 2 + 9 + 10 + 10 + 10


def _encoded(items: list[Any]) -> list[bytes]:
    return sorted(msgspec.json.encode(item) for item in items)


def _canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


@pytest.mark.parametrize("order", ORDERS)
def test_the_partitioned_bus_equals_replay(order: str) -> None:
    """The worker's path: the first part, ``clock --until`` the instant between, then the
    rest, as the broker test sends them."""
    first, later, between = _parts()
    bus = PartitionedBus(default_policy(), partitions=4, order=order, received_at=NOW)
    bus.produce(first)
    bus.tick(epoch(between))
    bus.run()
    bus.produce(later)
    bus.tick(epoch(UNTIL))
    out = bus.run()
    alerts, escalations, reports, letters, _ = _replayed()
    sent = _encoded(out.alerts)
    assert len(sent) == len(set(sent))
    assert [orjson.loads(a) for a in sent] and _canonical(
        [orjson.loads(a) for a in sent]) == _canonical(alerts)
    assert _canonical([orjson.loads(e) for e in _encoded(out.escalations)]) == _canonical(
        escalations)
    assert _canonical([orjson.loads(r) for r in _encoded(out.reports)]) == _canonical(reports)
    assert sorted(d.reason for d in out.dead_letters) == sorted(
        letter["reason"] for letter in letters)
