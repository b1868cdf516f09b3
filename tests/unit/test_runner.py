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
from closedloop.streams.engine.stage_runner import (
    DEDUP_PREFIX,
    ROUNDS,
    StageRunner,
    meta_key,
)
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
    second.assign(0)
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


def _travel_event(person: str, when: str, event_id: str) -> Any:
    envelope = travel(person, when, event_id=event_id)
    event = decode_event("travel", orjson.dumps(envelope["value"]))
    assert not hasattr(event, "reason"), event
    return event


def test_the_event_ids_a_partition_remembered_survive_a_takeover_through_the_table() -> None:
    # given a push applied and the batch flushed to the (changelogged) table
    table: dict[str, Any] = {}
    first = runner(table)
    event = _travel_event("p:000000000001", PUSHED, "tr-1")
    assert not first.on_input(0, "p:000000000001", event, epoch(PUSHED), "tr-1",
                              topic="travel", offset=0).duplicate
    first.flush()
    assert any(key.startswith(DEDUP_PREFIX) for key in table)
    # when another worker takes the partition over from the table
    second = runner(table)
    second.assign(0)
    # then the same event sent again is a duplicate there
    again = second.on_input(0, "p:000000000001", event, epoch(PUSHED), "tr-1",
                            topic="travel", offset=1)
    assert again.duplicate and again.alerts == []


def test_the_rows_of_an_hour_the_retention_passed_leave_the_table() -> None:
    table: dict[str, Any] = {}
    run = runner(table)
    run.on_input(0, "p:000000000001", _travel_event("p:000000000001", PUSHED, "tr-1"),
                 epoch(PUSHED), "tr-1", topic="travel", offset=0)
    run.flush()
    (old,) = [key for key in table if key.startswith(DEDUP_PREFIX)]
    # the clock four days later (past the first hour's retention, 72 h), and a new push
    later = at(PUSHED, days=4)
    run.on_tick(0, epoch(later), {})
    run.on_input(0, "p:000000000002", _travel_event("p:000000000002", later, "tr-2"),
                 epoch(later), "tr-2", topic="travel", offset=1)
    run.flush()
    rows = [key for key in table if key.startswith(DEDUP_PREFIX)]
    assert old not in rows and len(rows) == 1


def test_a_worker_keeps_the_event_ids_it_changelogged_once_and_still_expires_their_rows(
) -> None:
    from closedloop.agents.state import PersonState
    from closedloop.streams.engine.stage_runner import DedupChunk
    from closedloop.streams.engine.store import StageStore

    # given a push applied on a worker's store and the batch's changelog written
    store = StageStore(PersonState)
    store.enter(0)
    run = StageRunner(PERSON, policy(), store, upstream=0, inputs=("travel",),
                      mark_every=10**9)
    event = _travel_event("p:000000000001", PUSHED, "tr-1")
    run.on_input(0, "p:000000000001", event, epoch(PUSHED), "tr-1", topic="travel", offset=0)
    run.flush(store.enter)
    log = [(key, value) for _, key, value in store.changes()]
    (row,) = [key.decode() for key, _ in log if key.decode().startswith(DEDUP_PREFIX)]
    # then the changelog holds the digests, and the store's row no longer does
    kept = store.get(row)
    assert isinstance(kept, DedupChunk) and kept.digests == b""
    assert run.on_input(0, "p:000000000001", event, epoch(PUSHED), "tr-1", topic="travel",
                        offset=1).duplicate
    # and a worker restoring the partition from that changelog knows the event
    restored = StageStore(PersonState)
    restored.restore(0, log)
    restored.enter(0)
    second = StageRunner(PERSON, policy(), restored, upstream=0, inputs=("travel",))
    second.assign(0, restored.parts[0])
    assert second.on_input(0, "p:000000000001", event, epoch(PUSHED), "tr-1",
                           topic="travel", offset=1).duplicate
    # and once the retention passes the row's hour, the row is deleted from the changelog
    later = at(PUSHED, days=4)
    run.on_tick(0, epoch(later), {})
    run.on_input(0, "p:000000000002", _travel_event("p:000000000002", later, "tr-2"),
                 epoch(later), "tr-2", topic="travel", offset=2)
    run.flush(store.enter)
    assert (0, row.encode(), None) in list(store.changes())


def test_event_ids_an_older_worker_kept_in_each_state_are_read_back_as_the_partitions() -> None:
    # given a changelog written when each person's state held its own event ids
    from closedloop.agents.state import PersonState
    from closedloop.streams.engine.store import StageStore

    old = orjson.dumps({"last": epoch(PUSHED), "gc_due": epoch(PUSHED) + 691200,
                        "ids": {"travel:tr-9": epoch(PUSHED)}})
    store = StageStore(PersonState)
    store.restore(0, [(b"p:000000000009", old)])
    store.enter(0)
    run = StageRunner(PERSON, policy(), store, upstream=0, inputs=("travel",))
    run.assign(0, store.parts[0])
    # then the event those ids name is a duplicate, and the state reads without them
    event = _travel_event("p:000000000009", PUSHED, "tr-9")
    assert run.on_input(0, "p:000000000009", event, epoch(PUSHED), "tr-9", topic="travel",
                        offset=0).duplicate
    assert isinstance(store.get("p:000000000009"), PersonState)


def test_a_rounds_report_is_a_deadline_in_the_index_and_fires_before_the_keys() -> None:
    from helpers import population, round_

    run = StageRunner(PERSON, policy(), {}, upstream=0, inputs=("population",),
                      mark_every=10**9, shared=True)
    person = "p:000000000005"
    day_before = at(PUSHED, days=-1)
    envelope = population(person, day_before)
    record = decode_event("population", orjson.dumps(envelope["value"]))
    run.on_input(0, person, record, epoch(day_before), "pop-1", topic="population", offset=0)
    opens, closes = at(PUSHED, hours=1), at(PUSHED, hours=2)
    envelope = round_("r1", PUSHED, opens, closes)
    run.on_shared(0, decode_event("round", orjson.dumps(envelope["value"])))
    assert ROUNDS in run.partitions[0].index._live
    fx = run.on_tick(0, epoch(at(closes, seconds=1)), {})
    assert [alert.kind for alert in fx.alerts] == ["round_missed"]
    assert [share.stage for share in fx.round_parts] == [1]  # the close
