"""The shortcuts the embedded driver's hot path takes answer exactly as the long way would."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, event_time
from closedloop.agents.state import TubeState
from closedloop.schemas.events import Lab
from closedloop.schemas.policy import default_policy
from closedloop.streams.engine.deadlines import NEVER, DeadlineIndex


def _lab(when: str) -> Lab:
    return Lab(event_id="lb-1", occurred_at=datetime.fromisoformat(when), tube_id="tb-1",
               lab_id="lab:01", status="received")


def _context() -> Context:
    policy = default_policy()
    return Context(policy, Calendar(policy.zone, policy.daily_cutoff), 0)


def test_event_time_uses_the_drivers_conversion_only_for_that_very_event() -> None:
    ctx = _context()
    first, second = _lab("2022-09-06T10:00:00+08:00"), _lab("2022-09-06T10:00:00+08:00")
    assert event_time(ctx, first) == int(first.occurred_at.timestamp())
    ctx.event, ctx.event_at = first, 123  # a driver's (here deliberately wrong) conversion
    assert event_time(ctx, first) == 123
    assert event_time(ctx, second) == int(second.occurred_at.timestamp())  # equal, not it


def test_earliest_follows_the_heap_through_schedule_pop_and_rebuild() -> None:
    index = DeadlineIndex()
    assert index.earliest == NEVER and not index.has_due(2**62)
    index.schedule("a", 50)
    index.schedule("b", 20)
    index.schedule("a", 60)  # later than a's live due: no new entry
    assert index.earliest == 20 and index.has_due(20) and not index.has_due(19)
    assert list(index.pop_due(20)) == ["b"]
    assert index.earliest == 50
    index.schedule("a", 10)  # earlier: a's entry at 50 goes stale
    assert index.earliest == 10
    assert list(index.pop_due(100)) == ["a"]
    assert index.earliest == NEVER and len(index) == 0


def test_keys_sharing_an_instant_come_out_in_due_then_key_order_once_each() -> None:
    index = DeadlineIndex()
    for key in ("c", "a", "d", "b"):
        index.schedule(key, 30)
    index.schedule("e", 20)
    index.schedule("d", 10)  # earlier: d's entry at 30 goes stale
    assert list(index.pop_due(15)) == ["d"]
    index.schedule("d", 30)  # d at 30 again: its old entry there is not a second one
    index.schedule("f", 30)
    assert len(index) == 6
    assert list(index.pop_due(30)) == ["e", "a", "b", "c", "d", "f"]
    assert index.earliest == NEVER and len(index) == 0
    index.rebuild([(key, TubeState(gc_due=due)) for key, due in [("y", 5), ("x", 5), ("z", 4)]])
    assert index.earliest == 4 and list(index.pop_due(5)) == ["z", "x", "y"]


def test_date_of_is_the_day_whose_local_midnights_enclose_the_instant() -> None:
    # identity._too_many counts a day's samplings by bisecting at day_start(day) and
    # day_start(day + 1): that is date_of's answer, also where midnight is not on a UTC hour
    # and across a daylight-saving change.

    for zone in ("Asia/Shanghai", "Asia/Kathmandu", "America/Santiago", "Europe/London"):
        cal = Calendar(ZoneInfo(zone), 22 * 3600)
        day = date(2022, 3, 25)
        start = cal.day_start(day)
        for epoch in range(start - 2 * 86400, start + 20 * 86400, 900):
            found = cal.date_of(epoch)
            assert cal.day_start(found) <= epoch < cal.day_start(found + timedelta(days=1))


def test_rebuild_indexes_what_scheduling_each_key_would() -> None:
    states = [("k", TubeState(gc_due=40)), ("a", TubeState(gc_due=30)), ("n", TubeState()),
              ("b", TubeState(gc_due=30)), ("c", TubeState(gc_due=30)),
              ("k", TubeState(gc_due=35)), ("k", TubeState(gc_due=50))]  # a key twice: earliest
    rebuilt, scheduled = DeadlineIndex(), DeadlineIndex()
    rebuilt.schedule("stale", 1)
    rebuilt.rebuild(states)
    for key, state in states:
        scheduled.schedule(key, state.gc_due)
    assert rebuilt.earliest == scheduled.earliest == 30 and len(rebuilt) == len(scheduled) == 4
    assert rebuilt.pop_due(100) == scheduled.pop_due(100) == ["a", "b", "c", "k"]
