"""Travel push (上级推送, 第一时间定位, 每日随访日清日结), CONTRACT.md §4.

- ``unlocated``: no ``followup.located`` within ``locate_within`` of the push.
- ``followup_overdue``: the first clearance is the ``located`` record; each ``located`` or
  ``visit`` clears the person for ``followup_every``; a lapse fires at last clearance + 24 h,
  + 48 h, … while no record arrives and the regimen runs.
- ``test_missed``: no sampling on a required local day of the regimen (day 1 = local date of
  ``arrived_at``), due at the end of that day; days that ended before the push are not required.
- The regimen ends at the end of its last day, or at ``followup.released``.

Where the contract is silent (documented in docs/RULES.md):
a ``located`` record counts for the push if it is at or after ``arrived_at`` (or the push,
when the arrival is still to come), and one older than the push clears the person from the
push on; a newer push (later ``occurred_at``) replaces the person's regimen; a push whose
regimen ended before it requires nothing (one ending at the push still requires its last
day, as any day ending at the push); a lapse at or after the regimen's end or release
raises nothing, except the last test day, whose end is the regimen's end.
"""

from __future__ import annotations

from bisect import insort
from datetime import date, timedelta
from sys import intern
from typing import Final

import msgspec

from closedloop.agents.closure import GAUGES, close_interval, set_interval
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    close_req,
    latest_in,
    open_req,
    raise_alert,
)
from closedloop.agents.state import (
    FollowupChain,
    PersonLoops,
    PersonState,
    Push,
    loops_of,
    split_name,
)
from closedloop.schemas.events import Followup, Travel

__all__ = ["HANDLERS", "control_end", "located_at", "on_followup", "on_travel", "released_at"]

FOREVER: Final = 2**62


def _first_at_or_after(times: list[int] | None, floor: int) -> int | None:
    for value in times or ():
        if value >= floor:
            return value
    return None


PREV: Final = ":prev:"  # a requirement a replaced push still owes: <name>:prev:<pushed_at>
LEGACY_PREV: Final = ":prev"  # the suffix before replaced pushes were told apart (prev_push)


def _loops(st: PersonState) -> PersonLoops:
    """The loops of a person with a push (a push lives there: they exist)."""
    loops = st.loops
    assert loops is not None
    return loops


def _is_prev(name: str) -> bool:
    return PREV in name or name.endswith(LEGACY_PREV)


def _push_of(st: PersonState, name: str) -> Push:
    """The push a requirement belongs to: the current one, or a replaced one it still owes."""
    loops = _loops(st)
    if PREV in name:
        assert loops.prevs is not None  # kept while a requirement refers to it (_retire)
        return loops.prevs[int(name.rsplit(":", 1)[1])]
    push = loops.prev_push if name.endswith(LEGACY_PREV) else loops.push
    assert push is not None  # a travel requirement is opened by a push
    return push


def _journey_start(push: Push) -> int:
    """From when a grid worker's record is about this push's journey: its arrival, or the
    push itself when the arrival is still to come (a ``located`` within ``locate_within``
    of the push counts, §4, even before the person arrives)."""
    return min(push.arrived_at, push.pushed_at)


def located_at(st: PersonState, push: Push | None = None) -> int | None:
    loops = st.loops
    if loops is None:
        return None
    push = push if push is not None else loops.push
    return None if push is None else _first_at_or_after(loops.located, _journey_start(push))


def released_at(st: PersonState, push: Push | None = None) -> int | None:
    loops = st.loops
    if loops is None:
        return None
    push = push if push is not None else loops.push
    return None if push is None else _first_at_or_after(loops.released, _journey_start(push))


def control_end(st: PersonState, push: Push) -> int:
    """When the regimen stops: the end of its last day, or release if earlier."""
    release = released_at(st, push)
    ends = push.ends_at
    return ends if release is None else min(ends, release)


def on_travel(ctx: Context, st: PersonState, person_id: str, event: Travel,
              source: str = "travel") -> None:
    """A push opens (or replaces) the person's regimen and its requirements; ``source``
    (``travel``, or ``checkpoint`` for a risk-area entry) goes into every alert it raises."""
    pushed = int(event.occurred_at.timestamp())
    ctx.out.contribute(event.district, pushed, "pushed")  # every push counts, even a superseded one
    loops = loops_of(st)
    old = loops.push
    if old is not None and (old.pushed_at, old.event_id) >= (pushed, event.event_id):
        return  # an older push arriving late: the newer one stands (ties: larger event_id)
    arrived = int(event.arrived_at.timestamp())
    if old is not None:
        _retire(st, old, pushed)
        if old.arrived_at != arrived:
            located = located_at(st, old)
            if located is not None:  # counted for the old journey: not again for the new
                loops.located_done = [*(loops.located_done or [])[-3:], located]
            # A new journey: what the old regimen counted stays counted, up to this push.
            # (The same arrival pushed again is a correction: _refresh moves the counts.)
            for gauge in GAUGES:
                close_interval(ctx, st, gauge, pushed)
            if loops.iv is not None:  # a count, not a gauge: nothing to close
                loops.iv.pop("located", None)
                if not loops.iv:
                    loops.iv = None
    regimen = ctx.policy.regimens[event.risk]
    first_day = ctx.cal.date_of(arrived)
    ends = ctx.cal.day_start(first_day + timedelta(days=regimen.days))
    loops.push = push = Push(
        pushed_at=pushed,
        event_id=event.event_id,
        arrived_at=arrived,
        risk=intern(event.risk),
        district=intern(event.district),
        origin=intern(event.origin),
        ends_at=ends,
        first_day=first_day.isoformat(),
        source=source,
    )
    st.district = event.district
    if ends < pushed:
        return  # the regimen was over before the push: counted, nothing to require
    open_req(st, "unlocated", pushed + ctx.policy.locate_within)
    for number in regimen.test_days:
        day = first_day + timedelta(days=number - 1)
        due = ctx.cal.day_start(day + timedelta(days=1))
        if due >= pushed:  # only days that ended *before* the push are not required (§4)
            open_req(st, f"test:{day.isoformat()}", due)
    _refresh(ctx, st, push)


def _retire(st: PersonState, old: Push, replaced_at: int) -> None:
    """A replaced push still owes what fell due before its replacement; the rest is closed.

    Those requirements are renamed ``…:prev:<pushed_at>`` and judged against the old push,
    which now ends at the replacement: the outcome does not depend on whether the replacement
    arrived before or after the clock reached them. What older replaced pushes still owe is
    kept too (two re-pushes may both be applied before a lagging clock fires it).
    """
    loops = _loops(st)
    reqs = st.req or {}
    tag = f"{PREV}{old.pushed_at}"
    for name in [n for n in reqs if split_name(n)[0] in HANDLERS and not _is_prev(n)]:
        due = reqs.pop(name)
        if due <= replaced_at:
            reqs[name + tag] = due
    if not reqs:
        st.req = None
    prevs = loops.prevs
    if prevs is None:
        loops.prevs = prevs = {}
    prevs[old.pushed_at] = msgspec.structs.replace(old, ends_at=min(old.ends_at, replaced_at))
    owed = {int(n.rsplit(":", 1)[1]) for n in reqs if PREV in n}
    for key in [k for k in prevs if k not in owed]:
        del prevs[key]  # nothing refers to that push any more
    if not prevs:
        loops.prevs = None


def on_followup(ctx: Context, st: PersonState, person_id: str, event: Followup) -> None:
    """Record the grid worker's fact; requirements look at facts when they fall due."""
    at = int(event.occurred_at.timestamp())
    loops = loops_of(st)
    if event.kind == "released":
        if loops.released is None:
            loops.released = []
        insort(loops.released, at)
    else:
        if event.kind == "located":
            if loops.located is None:
                loops.located = []
            insort(loops.located, at)
        if loops.clears is None:
            loops.clears = []
        insort(loops.clears, at)
    if loops.push is not None:
        _refresh(ctx, st, loops.push)
        if event.kind != "released":
            _end_overdue_at(ctx, st, at)


def _refresh(ctx: Context, st: PersonState, push: Push) -> None:
    """Bring derived requirements in line with the facts: follow-up chain, release, gauges."""
    loops = _loops(st)
    located = located_at(st, push)
    # Located for this push, counted once, in the push's district, no earlier than the push:
    # a correction that re-pushes moves the count rather than adding one, in either order.
    since = None if located is None else max(located, push.pushed_at)
    counted = None if loops.located_done is not None and located in loops.located_done else since
    set_interval(ctx, st, "located", push.district, counted, None)
    if located is not None and push.fu is None and push.ends_at > push.pushed_at:
        # Nobody is asked to follow a person up before the push: a record older than the
        # push clears the person from the push on.
        anchor = max(located, push.pushed_at)
        push.fu = FollowupChain(anchor=anchor, floor=anchor)
        open_req(st, "followup", anchor + ctx.policy.followup_every)
    end = control_end(st, push)
    set_interval(ctx, st, "under_control", push.district, since, end)
    over = None if loops.iv is None else loops.iv.get("followup_overdue_open")
    if over is not None and (over.end is None or over.end > end):
        set_interval(ctx, st, "followup_overdue_open", over.district, over.start, end)
    release = released_at(st, push)
    if release is not None:
        # Anything due after the release can no longer lapse: close it now.
        for name, due in list((st.req or {}).items()):
            prefix = split_name(name)[0]
            lapsed_after = due >= release if prefix in ("unlocated", "followup") else due > release
            if prefix in HANDLERS and lapsed_after:
                close_req(st, name)


def _end_overdue_at(ctx: Context, st: PersonState, at: int) -> None:
    """A clearance at ``at`` ends an open follow-up lapse at that instant (for the report)."""
    loops = _loops(st)
    over = None if loops.iv is None else loops.iv.get("followup_overdue_open")
    if over is not None and over.start <= at and (over.end is None or at < over.end):
        set_interval(ctx, st, "followup_overdue_open", over.district, over.start, at)


def _lapse_unlocated(
    ctx: Context, st: PersonState, person_id: str, name: str, due: int
) -> int | None:
    push = _push_of(st, name)
    located = located_at(st, push)
    release = released_at(st, push)
    if (located is not None and located <= due) or (release is not None and release <= due):
        return None
    raise_alert(
        ctx, st, kind="unlocated", subject=person_id, due=due, person_id=person_id,
        district=push.district,
        details={
            "pushed_at": ctx.cal.iso(push.pushed_at),
            "locate_within_hours": ctx.policy.locate_within / 3600,
            "risk": push.risk,
            "source": push.source,
        },
    )
    return None


def _lapse_followup(
    ctx: Context, st: PersonState, person_id: str, name: str, due: int
) -> int | None:
    push = _push_of(st, name)
    loops = _loops(st)
    current = not _is_prev(name)
    chain = push.fu
    assert chain is not None  # opened when the push was located
    every = ctx.policy.followup_every
    if due >= control_end(st, push):
        return None
    cleared = latest_in(loops.clears or [], max(chain.anchor, chain.floor), due)
    if cleared is not None:
        chain.anchor = cleared
        return cleared + every
    lapses = (due - chain.anchor) // every
    raised = raise_alert(
        ctx, st, kind="followup_overdue", subject=person_id, due=due, person_id=person_id,
        district=push.district,
        details={
            "last_cleared_at": ctx.cal.iso(chain.anchor),
            "days_overdue": lapses,
            "followup_every_hours": every / 3600,
            "risk": push.risk,
            "source": push.source,
        },
    )
    was_open = chain.floor > chain.anchor  # an earlier lapse, not cleared since
    chain.floor = due
    current_push = loops.push
    assert current_push is not None  # a replaced push is only ever replaced by another
    if not current and push.arrived_at != current_push.arrived_at:
        # A new journey replaced this push and closed its gauges; count this lapse as open up
        # to the replacement, as if it had fired before it (however late the clock fired).
        later = _first_at_or_after(loops.clears, due + 1)
        end = control_end(st, push) if later is None else min(later, control_end(st, push))
        if raised and not was_open and end > due:
            ctx.out.contribute(push.district, due, "followup_overdue_open")
            ctx.out.contribute(push.district, end, "followup_overdue_open", -1)
        return due + every
    over = None if loops.iv is None else loops.iv.get("followup_overdue_open")
    if over is not None and over.end is not None and over.end <= due:
        close_interval(ctx, st, "followup_overdue_open", over.end)  # an earlier, ended lapse
    if raised and (loops.iv is None or "followup_overdue_open" not in loops.iv):
        later = _first_at_or_after(loops.clears, due + 1)
        end = control_end(st, current_push)
        end = end if later is None else min(later, end)
        set_interval(ctx, st, "followup_overdue_open", push.district, due, end)
    return due + every


def _lapse_test(ctx: Context, st: PersonState, person_id: str, name: str, due: int) -> int | None:
    push = _push_of(st, name)
    day = date.fromisoformat(split_name(name)[1][:10])  # test:<ISO day>[:prev:<pushed_at>]
    start = ctx.cal.day_start(day)
    release = released_at(st, push)
    if release is not None and release < due:
        return None
    sampled = latest_in([s.at for s in st.samples or ()], start - 1, due - 1)
    if sampled is not None:
        return None
    number = (day - date.fromisoformat(push.first_day)).days + 1
    if raise_alert(
        ctx, st, kind="test_missed", subject=person_id, due=due, person_id=person_id,
        district=push.district,
        details={
            "requirement": f"regimen:{push.risk}",
            "regimen_day": number,
            "date": day.isoformat(),
            "source": push.source,
        },
    ):
        ctx.out.contribute(push.district, due, "tests_missed")
    return None


HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {
    "unlocated": _lapse_unlocated,
    "followup": _lapse_followup,
    "test": _lapse_test,
}
