"""The person loop: every per-person requirement and deadline, keyed by ``person_id``.

Inputs are the person-keyed topics (travel, followup, cohort, action) and what the tube join
forwards (sampled, result, retest, a positive's escalation). This module routes each to its
loop and keeps the facts the loops share (samplings), bounded by ``state_retention``. An
action only touches an open escalation: it is not the person's activity and makes no state.
"""

from __future__ import annotations

from bisect import insort
from typing import Any, Final

from closedloop.agents import cohorts, escalation, identity, retests, travel
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    State,
    fire_due,
    keep_alive,
    lapse_gc,
    open_escalation,
    prune_sent,
)
from closedloop.schemas.events import Action, Cohort, Event, Followup, Travel
from closedloop.schemas.outputs import PersonStatus, PushStatus

__all__ = ["HANDLERS", "on_event", "on_forward", "person_status"]

PRUNE_ABOVE: Final = 12  # facts kept per list before old ones are looked at

HANDLERS: Final[dict[str, LapseHandler]] = {
    **travel.HANDLERS,
    **cohorts.HANDLERS,
    **retests.HANDLERS,
    **identity.HANDLERS,
    "esc": escalation.lapse_escalation,
    "gc": lapse_gc,
}


def on_event(ctx: Context, st: State, person_id: str, event: Event) -> None:
    """A person-keyed input event."""
    if isinstance(event, Action):
        fire_due(ctx, st, person_id, HANDLERS)  # raise what is due before judging the action
        escalation.on_action(ctx, st, event)
        return
    at = int(event.occurred_at.timestamp())
    if isinstance(event, Travel):
        travel.on_travel(ctx, st, person_id, event)
    elif isinstance(event, Followup):
        travel.on_followup(ctx, st, person_id, event)
    elif isinstance(event, Cohort):
        cohorts.on_cohort(ctx, st, person_id, event)
    if len(st.get("clears", ())) > PRUNE_ABOVE:
        _prune(ctx, st)
    keep_alive(ctx, st, at)


def on_forward(ctx: Context, st: State, person_id: str, msg: dict[str, Any]) -> None:
    """A message the tube join re-keyed to this person."""
    kind = msg["type"]
    if kind == "sampled":
        sample = [msg["at"], msg["tube"], msg["pool"], msg["site"], msg["lat"], msg["lon"],
                  msg["district"]]
        samples = st.get("samples")
        if samples is None:
            st["samples"] = [sample]
            if "district" not in st:
                st["district"] = msg["district"]
            identity.on_sampled(ctx, st, person_id, sample)
        elif all(existing[1] != msg["tube"] for existing in samples):
            insort(samples, sample, key=_sample_order)
            identity.on_sampled(ctx, st, person_id, sample)
            if len(samples) > PRUNE_ABOVE:
                _prune(ctx, st)
    elif kind == "retest":
        retests.on_retest_needed(ctx, st, person_id, msg)
    elif kind == "result":
        st["last_result"] = [msg["at"], msg["result"]]
    elif kind == "escalate":
        open_escalation(ctx, st, msg["alert"], msg["entry"], msg["at"])
    keep_alive(ctx, st, int(msg.get("at", msg.get("reported", ctx.clock))))


def _sample_order(sample: list[Any]) -> tuple[int, str]:
    return sample[0], sample[1]


def _prune(ctx: Context, st: State) -> None:
    """Drop facts no open requirement can still look at (called when a list grows long)."""
    horizon = ctx.clock - ctx.policy.state_retention
    samples = st.get("samples")
    if samples and samples[0][0] < horizon:
        st["samples"] = [s for s in samples if s[0] >= horizon]
    for name in ("clears", "located", "released"):
        times = st.get(name)
        if times and times[0] < horizon and (st.get("push") is None or len(times) > 1):
            kept = [t for t in times if t >= horizon]
            if name != "clears" or kept:
                st[name] = kept or times[-1:]
    days = st.get("id_days")
    if days and len(days) > 3:
        st["id_days"] = days[-3:]
    prune_sent(st, horizon)


def person_status(ctx: Context, person_id: str, st: State) -> PersonStatus:
    """The person's current state for the compacted ``person-status`` topic."""
    push = st.get("push")
    push_status = None
    under_control = False
    if push is not None:
        located = travel.located_at(st)
        release = travel.released_at(st)
        clears = st.get("clears", [])
        end = travel.control_end(st)
        under_control = located is not None and located <= ctx.clock < end
        push_status = PushStatus(
            risk=push["risk"],
            regimen=ctx.policy.regimens[push["risk"]].mode,
            arrived_at=ctx.cal.iso(push["arrived_at"]),
            pushed_at=ctx.cal.iso(push["pushed_at"]),
            ends_at=ctx.cal.iso(push["ends_at"]),
            located_at=None if located is None else ctx.cal.iso(located),
            last_cleared_at=ctx.cal.iso(clears[-1]) if clears else None,
            released_at=None if release is None else ctx.cal.iso(release),
        )
    samples = st.get("samples", [])
    last_result = st.get("last_result")
    return PersonStatus(
        person_id=person_id,
        district=st.get("district"),
        updated_at=ctx.cal.iso(st.get("last", 0)),
        under_control=under_control,
        push=push_status,
        cohorts=cohorts.active_cohorts(st),
        open_requirements=sorted(
            name for name in st.get("req", {}) if name != "gc" and not name.startswith("esc:")
        ),
        last_sampled_at=ctx.cal.iso(samples[-1][0]) if samples else None,
        last_result=None if last_result is None else last_result[1],
    )
