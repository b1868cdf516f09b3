"""The supervision stage's key: a unit (CONTRACT.md v1.2 §4, 督导检查), run as every stage is.

:mod:`closedloop.agents.supervision` holds the rules over a unit's findings with no runtime
in them; this module keeps them on a keyed state (:class:`UnitKey`) and turns what they
decide into the runtime's effects: alerts with their escalation (only an operator's action
stops it: no satisfier), contributions to the daily report of each finding's district, and
one deadline, ``supervision``, at the earliest of the unit's lapses, its orphans' time to be
given up and the instant a finding may be forgotten (a unit is kept as long as its findings
are what a later finding would repeat, beyond ``state_retention``).
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from closedloop.agents import escalation, supervision
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    close_req,
    event_time,
    fire_due,
    keep_alive,
    lapse_gc,
    open_req,
    raise_alert,
)
from closedloop.agents.state import Keyed
from closedloop.agents.supervision import Part, UnitState
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Action, Inspection
from closedloop.schemas.outputs import UnitStatus

__all__ = ["HANDLERS", "UnitKey", "on_action", "on_inspection", "unit_status"]

REQ: Final = "supervision"


class UnitKey(Keyed, kw_only=True, omit_defaults=True, gc=False):
    """A supervised unit's key: its findings and what is waiting for them."""

    unit: UnitState | None = None


def on_inspection(ctx: Context, st: UnitKey, unit_id: str, event: Inspection
                  ) -> Rejection | None:
    at = event_time(ctx, event)
    unit = st.unit
    if unit is None:
        st.unit = unit = UnitState()
    before = supervision.counted(ctx.policy, unit)
    _parts(ctx, supervision.on_inspection_counted(ctx.policy, unit, event, at)[1])
    _count(ctx, before, unit)
    keep_alive(ctx, st, at)
    _schedule(ctx, st, unit)
    return None


def on_action(ctx: Context, st: UnitKey, unit_id: str, event: Action) -> None:
    """An operator's action on one of this unit's alerts (others are ignored). What the clock
    already reached fires first, so an alert due by now is raised before the action on it."""
    fire_due(ctx, st, unit_id, HANDLERS)
    escalation.on_action(ctx, st, event)


def _lapse(ctx: Context, st: UnitKey, unit_id: str, name: str, due: int) -> int | None:
    """The clock reached the unit's deadline: raise what lapsed, count it, forget what is
    done with; the next deadline."""
    unit = st.unit
    if unit is None:
        return None
    before = supervision.counted(ctx.policy, unit)
    judged, parts = supervision.fire_counted(ctx.policy, unit, unit_id, ctx.clock)
    _count(ctx, before, unit)
    for raised in judged.alerts:
        raise_alert(ctx, st, kind=raised.kind, subject=unit_id, due=raised.due,
                    raised=raised.raised, district=raised.district, details=raised.details)
    _parts(ctx, parts)
    if not unit.findings and not unit.orphans:
        st.unit = None
        return None
    return _next(ctx, unit)


def _next(ctx: Context, unit: UnitState) -> int | None:
    dues = [due for due in (supervision.next_due(ctx.policy, unit),
                            supervision.forget_due(ctx.policy, unit)) if due is not None]
    return min(dues, default=None)


def _schedule(ctx: Context, st: UnitKey, unit: UnitState) -> None:
    due = _next(ctx, unit)
    if due is None:
        close_req(st, REQ)
    else:
        open_req(st, REQ, due)


def _count(ctx: Context, before: Counter[str], unit: UnitState) -> None:
    """What the rules newly ignored and counted (a finding forgotten takes its own counts
    with it: only increases are news)."""
    for name, n in (supervision.counted(ctx.policy, unit) - before).items():
        ctx.out.count(f"supervision:{name}", n)


def _parts(ctx: Context, parts: list[Part]) -> None:
    contribute = ctx.out.contribute
    for part in parts:
        contribute(part.district, part.at, part.field, part.d)


def unit_status(ctx: Context, unit_id: str, st: UnitKey) -> UnitStatus:
    """The unit's findings for the compacted ``unit-status`` topic (the ledger's)."""
    return supervision.unit_status(ctx.policy, ctx.cal, unit_id, st.unit or UnitState(),
                                   max(st.last, ctx.clock))


HANDLERS: Final[dict[str, LapseHandler[UnitKey]]] = {
    REQ: _lapse,
    "esc": escalation.lapse_escalation,
    "gc": lapse_gc,
}
