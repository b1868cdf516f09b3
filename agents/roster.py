"""The roster (常住人口, 流动人员), CONTRACT.md §4 "Testing rounds and the roster comparison".

Per person, the ``population`` record with the latest occurred_at (ties: the larger event_id)
at an instant is their entry then; ``left`` takes them off. A person keeps the few records a
round may still ask about (the latest one, and those newer than ``state_retention`` ago), so
a record arriving out of order is placed where it belongs.

Where the contract is silent: the roster is what a person *is*, not an activity, so a person
on the roster (latest entry not ``left``) is never forgotten by ``gc``: their other facts are,
as if the key were deleted, and the roster entry stays.
"""

from __future__ import annotations

from bisect import insort
from sys import intern

import msgspec

from closedloop.agents.requirements import Context, event_time, lapse_gc
from closedloop.agents.rounds import entry_at, tracking
from closedloop.agents.state import PersonState, RosterEntry
from closedloop.schemas.events import Population

__all__ = ["entry_at", "lapse_gc_keep_roster", "on_population"]  # entry_at: agents/rounds.py

_KEEP = frozenset({"roster"})


def on_population(ctx: Context, st: PersonState, person_id: str, event: Population) -> None:
    """Place the record in the person's roster history; forget what no round can ask about."""
    at = event_time(ctx, event)
    entry = RosterEntry(at, event.event_id, intern(event.district),
                        None if event.grid is None else intern(event.grid),
                        intern(event.status))  # two values, one string each
    if st.roster is not None and entry in st.roster:
        return
    roster = list(st.roster or ())
    insort(roster, entry, key=_order)
    horizon = ctx.clock - ctx.policy.state_retention
    # keep the latest entry at or before the horizon (the entry then) and all after it
    start = 0
    for index, existing in enumerate(roster):
        if existing.at <= horizon:
            start = index
    st.roster = tuple(roster[start:])
    latest = roster[-1]
    if latest.status != "left":
        st.district = latest.district


def lapse_gc_keep_roster(ctx: Context, st: PersonState, key: str, name: str, due: int
                         ) -> int | None:
    """``gc``, but a person on the roster keeps their roster entries (and nothing else)."""
    with tracking(ctx, st, key):  # what it forgets leaves the rounds' progress counts
        return _gc(ctx, st, key, name, due)


def _gc(ctx: Context, st: PersonState, key: str, name: str, due: int) -> int | None:
    following = lapse_gc(ctx, st, key, name, due)
    roster = st.roster
    if key in ctx.out.gone and roster and roster[-1].status != "left":
        ctx.out.gone.discard(key)  # kept, as if deleted but for the roster
        for field in msgspec.structs.fields(st):  # fire_due then sets gc_due: None
            if field.name not in _KEEP:
                setattr(st, field.name, field.default if field.default is not msgspec.NODEFAULT
                        else field.default_factory())
    return following


def _order(entry: RosterEntry) -> tuple[int, str]:
    return entry.at, entry.event_id
