"""The person loop: every per-person requirement and deadline, keyed by ``person_id``.

Inputs are the person-keyed topics (travel, followup, cohort, action) and what the tube join
forwards (sampled, result, retest, a positive's escalation). This module routes each to its
loop and keeps the facts the loops share (samplings), bounded by ``state_retention``. An
action only touches an open escalation: it is not the person's activity and makes no state.
"""

from __future__ import annotations

from bisect import insort
from functools import lru_cache
from sys import intern
from typing import Final

from closedloop.agents import cohorts, entries, escalation, identity, retests, roster, travel
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    event_time,
    fire_due,
    keep_alive,
    open_escalation,
    prune_sent,
)
from closedloop.agents.state import (
    Escalate,
    Forward,
    LastResult,
    PersonLoops,
    PersonState,
    Result,
    Retest,
    Sample,
    Sampled,
    Site,
)
from closedloop.schemas.events import (
    Action,
    Checkpoint,
    Clinic,
    Cohort,
    Event,
    Followup,
    Population,
    Travel,
)
from closedloop.schemas.instants import shared
from closedloop.schemas.outputs import PersonStatus, PushStatus

__all__ = ["HANDLERS", "PERSON_EVENTS", "forward_time", "on_event", "on_forward",
           "person_status"]

PERSON_EVENTS: Final = (Travel, Followup, Cohort, Action, Population, Checkpoint, Clinic)
"""The person-keyed input events."""
PRUNE_ABOVE: Final = 12  # facts kept per list before old ones are looked at
SITES: Final = 1 << 12  # distinct sites shared before the table starts anew
_SITES: dict[tuple[str, float | None, float | None, str], Site] = {}

HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {
    **travel.HANDLERS,
    **cohorts.HANDLERS,
    **retests.HANDLERS,
    **identity.HANDLERS,
    **entries.HANDLERS,
    "esc": escalation.lapse_escalation,
    "gc": roster.lapse_gc_keep_roster,  # lapse_gc, but the roster stays
}


def on_event(ctx: Context, st: PersonState, person_id: str, event: Event) -> None:
    """A person-keyed input event."""
    if isinstance(event, Action):
        fire_due(ctx, st, person_id, HANDLERS)  # raise what is due before judging the action
        escalation.on_action(ctx, st, event)
        return
    at = event_time(ctx, event)
    if isinstance(event, Travel):
        travel.on_travel(ctx, st, person_id, event)
    elif isinstance(event, Followup):
        travel.on_followup(ctx, st, person_id, event)
    elif isinstance(event, Cohort):
        cohorts.on_cohort(ctx, st, person_id, event)
    elif isinstance(event, Checkpoint):
        entries.on_checkpoint(ctx, st, person_id, event)
    elif isinstance(event, Clinic):
        entries.on_clinic(ctx, st, person_id, event)
    elif isinstance(event, Population):
        roster.on_population(ctx, st, person_id, event)
    loops = st.loops
    if loops is not None and loops.clears is not None and len(loops.clears) > PRUNE_ABOVE:
        _prune(ctx, st)
    keep_alive(ctx, st, at)


def forward_time(msg: Forward) -> int:
    """The event time a forward carries: the person's activity it stands for."""
    if isinstance(msg, Retest):
        return msg.reported
    return msg.at


def on_forward(ctx: Context, st: PersonState, person_id: str, msg: Forward) -> None:
    """A message the tube join re-keyed to this person."""
    if isinstance(msg, Sampled):
        # a tube id repeats across its pool's members: one string (~50 bytes a person saved
        # on a pooled round); a sampling's instant one object, and a site (its id, its
        # coordinates, its district) one Site for the city's samples (~120 a sample)
        sample = Sample(shared(msg.at), intern(msg.tube), msg.pool,
                        _site(msg.site, msg.lat, msg.lon, msg.district))
        samples = st.samples
        if samples is None:
            st.samples = (sample,)
            if st.district is None:
                st.district = sample.place.district
            identity.on_sampled(ctx, st, person_id, sample)
        else:
            tube = sample.tube
            for existing in samples:  # a plain loop: a generator costs more than the search
                if existing.tube == tube:
                    break  # this tube is known: nothing new
            else:
                if samples[-1].at < sample.at:  # the usual case: insort, without its key calls
                    st.samples = samples = (*samples, sample)
                else:
                    ordered = list(samples)
                    insort(ordered, sample, key=_sample_order)
                    st.samples = samples = tuple(ordered)
                identity.on_sampled(ctx, st, person_id, sample)
                if len(samples) > PRUNE_ABOVE:
                    _prune(ctx, st)
        keep_alive(ctx, st, sample.at)  # forward_time of a Sampled, without the call
        return
    if isinstance(msg, Retest):
        retests.on_retest_needed(ctx, st, person_id, msg)
    elif isinstance(msg, Result):
        st.last_result = result = _last_result(msg.at, msg.result)
        # its instant the object the tube holds (a forward's is decoded afresh): the
        # person's latest activity is most often this result
        keep_alive(ctx, st, result.at)
        return
    elif isinstance(msg, Escalate):
        open_escalation(ctx, st, msg.alert, msg.entry, msg.at)
    keep_alive(ctx, st, forward_time(msg))


def _site(site: str, lat: float | None, lon: float | None, district: str) -> Site:
    """The :class:`Site` object already standing for this place: a city's samples come from
    a few hundred sites (a Site, its id, district and two floats would be ~170 bytes each).
    The table starts anew once it holds ``SITES`` places, so odd input keeps it small.
    """
    key = (site, lat, lon, district)
    kept = _SITES.get(key)
    if kept is None:
        kept = Site(intern(site), lat, lon, intern(district))
        if lat == 0 or lon == 0:  # 0.0 and -0.0 are equal keys but print apart: not shared
            return kept
        if len(_SITES) >= SITES:
            _SITES.clear()
        _SITES[key] = kept
    return kept


@lru_cache(maxsize=256)
def _last_result(at: int, result: str) -> LastResult:
    """The record of a result, one (frozen) object for equal ones: a pool's members get the
    same result one after another (~30 bytes a person of a pooled round). Its instant and
    its word are the objects already standing for them: the worker decodes a forward's
    fields afresh, and the tube holds the same instant (~40 bytes a person)."""
    return LastResult(shared(at), intern(result))


def _sample_order(sample: Sample) -> tuple[int, str]:
    return sample.at, sample.tube


def _prune(ctx: Context, st: PersonState) -> None:
    """Drop facts no open requirement can still look at (called when a list grows long)."""
    horizon = ctx.clock - ctx.policy.state_retention
    samples = st.samples
    if samples and samples[0].at < horizon:
        st.samples = tuple(s for s in samples if s.at >= horizon)
    loops = st.loops
    if loops is not None:
        _prune_loops(loops, horizon)
    prune_sent(st, horizon)


def _prune_loops(loops: PersonLoops, horizon: int) -> None:
    has_push = loops.push is not None
    clears = loops.clears
    if clears and clears[0] < horizon and (not has_push or len(clears) > 1):
        kept = [t for t in clears if t >= horizon]
        if kept:
            loops.clears = kept
    located = loops.located
    if located and located[0] < horizon and (not has_push or len(located) > 1):
        loops.located = [t for t in located if t >= horizon] or located[-1:]
    released = loops.released
    if released and released[0] < horizon and (not has_push or len(released) > 1):
        loops.released = [t for t in released if t >= horizon] or released[-1:]
    days = loops.id_days
    if days and len(days) > 3:
        loops.id_days = days[-3:]


def person_status(ctx: Context, person_id: str, st: PersonState) -> PersonStatus:
    """The person's current state for the compacted ``person-status`` topic."""
    loops = st.loops
    push = None if loops is None else loops.push
    push_status = None
    under_control = False
    if loops is not None and push is not None:
        located = travel.located_at(st, push)
        release = travel.released_at(st, push)
        clears = loops.clears
        end = travel.control_end(st, push)
        under_control = located is not None and located <= ctx.clock < end
        push_status = PushStatus(
            risk=push.risk,
            regimen=ctx.policy.regimens[push.risk].mode,
            arrived_at=ctx.cal.iso(push.arrived_at),
            pushed_at=ctx.cal.iso(push.pushed_at),
            ends_at=ctx.cal.iso(push.ends_at),
            located_at=None if located is None else ctx.cal.iso(located),
            last_cleared_at=ctx.cal.iso(clears[-1]) if clears else None,
            released_at=None if release is None else ctx.cal.iso(release),
        )
    samples = st.samples
    last_result = st.last_result
    return PersonStatus(
        person_id=person_id,
        district=st.district,
        updated_at=ctx.cal.iso(st.last),
        under_control=under_control,
        push=push_status,
        cohorts=cohorts.active_cohorts(st),
        open_requirements=sorted(
            name for name in st.req or () if not name.startswith("esc:")
        ),
        last_sampled_at=ctx.cal.iso(samples[-1].at) if samples else None,
        last_result=None if last_result is None else last_result.result,
        samplings=[ctx.cal.iso(sample.at) for sample in samples or ()],
    )
