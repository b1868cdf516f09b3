"""A person's occasional loops live in ``PersonState.loops`` (agents/state.py): a changelog
written before, with those fields flat at the top level, must restore every one of them (msgspec
drops unknown keys silently), and an emptied ``loops`` must change nothing a state means.

States come from the real person stage, not a hand-made imitation of its layout.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from helpers import T0, at, checkpoint, clinic, cohort, epoch, followup, policy, population, travel

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context
from closedloop.agents.state import PersonLoops, PersonState, Retest, is_blank
from closedloop.schemas.decode import Rejection, decode_event
from closedloop.streams.engine.store import StageStore
from closedloop.streams.engine.topology import PERSON

PERSON_ID = "p:000000000042"


def _context(clock: int) -> Context:
    rules = policy()
    return Context(rules, Calendar(rules.zone, rules.daily_cutoff), clock)


def _apply(ctx: Context, table: dict[str, PersonState], envelope: dict[str, Any]) -> None:
    event = decode_event(envelope["topic"], orjson.dumps(envelope["value"]))
    assert not isinstance(event, Rejection), event
    PERSON.apply(ctx, table, PERSON_ID, event, fire=False)


def _person_in_every_loop() -> PersonState:
    """A person pushed twice, located, in a cohort, asked for a retest, at a checkpoint and at
    a clinic, released later: every loop wrote something."""
    ctx = _context(epoch(T0))
    table: dict[str, PersonState] = {}
    for envelope in (
        travel(PERSON_ID, T0, risk="medium"),
        followup(PERSON_ID, at(T0, hours=1), "located"),
        travel(PERSON_ID, at(T0, hours=2), risk="high", arrived=at(T0, hours=2)),
        followup(PERSON_ID, at(T0, hours=3), "located"),
        cohort(PERSON_ID, at(T0, hours=4)),
        checkpoint(PERSON_ID, at(T0, hours=5), None),
        clinic(PERSON_ID, at(T0, hours=6)),
        followup(PERSON_ID, at(T0, days=30), "released"),  # after every lapse fired below
    ):
        _apply(ctx, table, envelope)
    retest = Retest(tube="tb-9", reported=epoch(at(T0, hours=7)), result="invalid",
                    single=False, district="district-a")
    PERSON.apply(ctx, table, PERSON_ID, retest, fire=False)
    state = table[PERSON_ID]
    assert state.loops is not None
    state.loops.id_days = ["2022-09-05"]  # as if an identity_suspect was raised that day
    return state


def _flat(state: PersonState) -> bytes:
    """``state`` as a changelog record written before ``loops``: its fields at the top."""
    fields = msgspec.json.decode(msgspec.json.encode(state))
    fields.update(fields.pop("loops"))
    return msgspec.json.encode(fields)


def _fired(state: PersonState, clock: int) -> tuple[list[Any], PersonState | None]:
    """What firing ``state``'s deadlines up to ``clock`` raises and counts, and what is kept."""
    ctx = _context(clock)
    table = {PERSON_ID: state}
    PERSON.fire(ctx, table, PERSON_ID)
    return [ctx.out.alerts, ctx.out.contributions, ctx.out.forwards], table.get(PERSON_ID)


def test_a_person_changelogged_with_flat_loops_restores_them_all_and_fires_alike() -> None:
    state = _person_in_every_loop()
    loops = state.loops
    assert loops is not None
    written = {name for name in PersonLoops.__struct_fields__ if getattr(loops, name)}
    assert written == set(PersonLoops.__struct_fields__) - {"prev_push"}  # (written before)
    old = _flat(state)
    assert b'"loops"' not in old and b'"push":' in old and b'"entries":' in old
    new = msgspec.json.encode(state)
    reader = StageStore(PersonState)
    assert reader.restore(0, [(b"old", old), (b"new", new)]) == 2
    reader.enter(0)
    from_old, from_new = reader.get("old"), reader.get("new")
    assert type(from_old) is PersonState and type(from_new) is PersonState
    assert from_old == from_new == state
    assert msgspec.json.encode(from_old) == new  # written back in the new shape
    # the same deadlines lapse the same way, a day and three weeks on
    for days in (1, 21):
        clock = epoch(at(T0, days=days))
        copies = [msgspec.json.decode(new, type=PersonState) for _ in range(2)]
        restored = StageStore(PersonState)
        restored.restore(0, [(b"old", old)])
        restored.enter(0)
        again = restored.get("old")
        assert isinstance(again, PersonState)
        expected = _fired(copies[0], clock)
        assert expected[0][0] or expected[0][1]  # something lapsed
        assert _fired(again, clock) == expected


def test_an_emptied_loops_is_blank_and_gc_forgets_the_loops_not_the_roster() -> None:
    assert is_blank(PersonState(loops=PersonLoops()))
    assert not is_blank(PersonState(loops=PersonLoops(id_days=["2022-09-06"])))
    ctx = _context(epoch(T0))
    table: dict[str, PersonState] = {}
    _apply(ctx, table, population(PERSON_ID, T0))
    _apply(ctx, table, followup(PERSON_ID, at(T0, hours=1), "visit"))  # no push: a fact alone
    kept = table[PERSON_ID]
    assert kept.loops is not None and kept.loops.clears and kept.roster
    _, after = _fired(kept, epoch(at(T0, days=30)))
    assert after is not None and after.loops is None and after.roster == kept.roster
