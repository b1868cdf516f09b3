"""StageRunner, the worker's per-partition logic, without a broker.

The worker's agents only decode and send; when a tick applies, which clock is announced
downstream, and what is kept for a takeover are all decided here. A tick that arrives after
every offset it waits for must fire the lapses it reaches and announce its own instant at
once: nothing else may ever arrive on that partition to do it later.
"""

from __future__ import annotations

from typing import Any

import orjson
from helpers import T0, at, epoch, policy, travel

from closedloop.schemas.decode import decode_event
from closedloop.streams.engine.stage_runner import StageRunner, meta_key
from closedloop.streams.engine.topology import PERSON

PUSHED = T0
LOCATE_BY = epoch(at(PUSHED, hours=2))  # the default policy's locate_within


def runner(table: dict[str, Any], *, upstream: int = 0) -> StageRunner:
    return StageRunner(PERSON, policy(), table, upstream=upstream, inputs=("travel",),
                       mark_every=10**9)


def push(run: StageRunner, offset: int, person: str = "p:000000000001") -> Any:
    envelope = travel(person, PUSHED)
    event = decode_event("travel", orjson.dumps(envelope["value"]))
    assert not hasattr(event, "reason"), event
    return run.on_input(0, person, event, epoch(PUSHED), f"travel:{event.event_id}",
                        topic="travel", offset=offset)


def test_a_tick_whose_offsets_are_applied_fires_and_marks_its_instant_at_once() -> None:
    run = runner({})
    push(run, offset=0)
    tick = LOCATE_BY + 60
    fx = run.on_tick(0, tick, {"travel": 1})  # end offset 1: offset 0 is already applied
    assert [a.kind for a in fx.alerts] == ["unlocated"]
    assert fx.mark == tick
    assert run.effective_clock(0) == tick


def test_a_tick_waits_for_its_offsets_then_fires_when_the_last_one_is_applied() -> None:
    run = runner({})
    push(run, offset=0)
    tick = LOCATE_BY + 60
    waiting = run.on_tick(0, tick, {"travel": 2})  # offset 1 not applied yet
    assert waiting.alerts == [] and waiting.mark is None
    fx = push(run, offset=1, person="p:000000000002")
    assert sorted(a.subject for a in fx.alerts) == ["p:000000000001", "p:000000000002"]
    assert fx.mark == tick


def test_a_rejected_last_offset_releases_the_tick() -> None:
    run = runner({})
    push(run, offset=0)
    tick = LOCATE_BY + 60
    assert run.on_tick(0, tick, {"travel": 2}).alerts == []
    fx = run.on_skipped(0, "travel", 1)
    assert [a.kind for a in fx.alerts] == ["unlocated"]
    assert fx.mark == tick


def test_offsets_the_group_committed_before_a_takeover_count_as_applied() -> None:
    commits: dict[str, int] = {}
    run = StageRunner(PERSON, policy(), {}, upstream=0, inputs=("travel",),
                      committed=lambda topic, partition: commits.get(topic))
    push(run, offset=0)
    tick = LOCATE_BY + 60
    assert run.on_tick(0, tick, {"travel": 5}).mark is None  # offsets 1..4 not applied here
    commits["travel"] = 5  # the previous owner applied and committed up to offset 4
    fx = run.on_tick(0, tick + 1, {"travel": 5})
    assert [a.kind for a in fx.alerts] == ["unlocated"] and fx.mark == tick + 1


def test_upstream_marks_hold_the_clock_until_every_partition_has_spoken() -> None:
    run = runner({}, upstream=2)
    push(run, offset=0)
    tick = LOCATE_BY + 60
    assert run.on_tick(0, tick, {}).alerts == []  # no upstream mark yet
    assert run.on_mark(0, "tube/0", tick).alerts == []
    fx = run.on_mark(0, "tube/1", LOCATE_BY)  # the slowest upstream reaches the deadline
    assert [a.kind for a in fx.alerts] == ["unlocated"]
    assert run.effective_clock(0) == LOCATE_BY


def test_a_duplicate_event_id_is_applied_once() -> None:
    run = runner({})
    person = "p:000000000001"
    envelope = travel(person, PUSHED)
    event = decode_event("travel", orjson.dumps(envelope["value"]))
    first = run.on_input(0, person, event, epoch(PUSHED), "travel:x", topic="travel", offset=0)
    again = run.on_input(0, person, event, epoch(PUSHED), "travel:x", topic="travel", offset=1)
    assert not first.duplicate and again.duplicate
    fx = run.on_tick(0, LOCATE_BY + 60, {"travel": 2})
    assert [a.kind for a in fx.alerts] == ["unlocated"]


def test_a_pending_tick_survives_a_takeover_through_the_table() -> None:
    table: dict[str, Any] = {}
    first = runner(table)
    push(first, offset=0)
    tick = LOCATE_BY + 60
    first.on_tick(0, tick, {"travel": 2})
    first.flush()  # as the worker does at the end of each batch
    assert meta_key(0) in table
    second = runner(table)  # another worker, same (changelogged) table
    second.assign(0, [k for k in table if not k.startswith("\x00")])
    fx = second.on_skipped(0, "travel", 1)
    assert [a.kind for a in fx.alerts] == ["unlocated"] and fx.mark == tick



def test_an_input_topic_that_has_delivered_nothing_yet_holds_the_clock() -> None:
    # given a stage reading travel and followup, and a push far in the past on travel only
    # (the producer may still be writing followup records older than it)
    run = StageRunner(PERSON, policy(), {}, upstream=0, inputs=("travel", "followup"),
                      mark_every=10**9)
    late = epoch(at(PUSHED, hours=30))
    envelope = travel("p:000000000003", at(PUSHED, hours=30))
    event = decode_event("travel", orjson.dumps(envelope["value"]))
    fx = run.on_input(0, "p:000000000003", event, late, "travel:x", topic="travel", offset=0)
    # then nothing fires: the clock does not run past facts followup has yet to deliver
    assert run.effective_clock(0) < epoch(PUSHED) and fx.mark is None
    # and a tick still moves it (clock --until, or the wall clock)
    assert run.on_tick(0, late, {}).mark == late
