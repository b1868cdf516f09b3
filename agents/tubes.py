"""Sample ⋈ lab, the tube join (CONTRACT.md §4), keyed by ``tube_id``.

Results may arrive before samplings, so both sides are facts in the tube's state and every
rule is checked when the later side arrives or when its deadline falls due:

- ``lab_sla_breached``: stage ``transport`` when no ``received``/``reported`` within
  ``received_within`` of the tube's earliest collection; stage ``result`` when no
  ``reported`` within ``reported_within``; once per tube and stage.
- ``positive``: a single tube (pool_size 1) reported positive, one alert for its person.
- ``pool_positive``: a pooled tube reported positive, one alert for the tube listing its
  members swabbed by the report, due at it (so they are all listed, whatever the arrival
  order or the clock's lag; a tube first swabbed after its report is listed at that swab);
  each member then needs a single-tube retest (person side, ``retests``).
- ``invalid``: every member needs a new sampling; no positive alert.
- ``orphan_result``: a reported tube with no sampling within ``orphan_after`` of the report.
- operator actions keyed by tube_id close the escalation of the tube's own alerts; a single
  tube's ``positive`` is about a person, so its escalation is forwarded to the person.

What a person must know (sampled, a result, a retest needed) is forwarded, re-keyed by person.
The first sampling fixes the tube's ``pool_size``; a member beyond it is rejected
(``pool_overflow``). The first report of a tube is its result; later ones are ignored.
"""

from __future__ import annotations

from functools import lru_cache
from sys import intern
from typing import Final

from closedloop.agents import escalation
from closedloop.agents.lab_waits import lapse_wait, on_lab_record
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    escalation_entry,
    event_time,
    fire_due,
    keep_alive,
    lapse_gc,
    open_req,
    open_req_by,
    raise_alert,
)
from closedloop.agents.state import (
    Escalate,
    LabReport,
    Result,
    Retest,
    Sampled,
    TubeState,
    split_name,
)
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Action, Lab, Sampling
from closedloop.schemas.ids import alert_id

__all__ = ["HANDLERS", "on_action", "on_lab", "on_sampling"]


def on_sampling(
    ctx: Context, st: TubeState, tube_id: str, event: Sampling
) -> Rejection | None:
    at = event_time(ctx, event)
    persons = st.persons or ()
    pool_size = st.pool
    if pool_size is None:
        st.pool = pool_size = event.pool_size
    # The person's id once for the city: the person table's key is the same string (the
    # embedded driver interns every key), not a copy per tube (~60 bytes a person).
    person_id = intern(event.person_id)
    if person_id in persons:
        return None  # the same person again in the same tube: one member
    if len(persons) >= pool_size:
        return Rejection(
            "pool_overflow",
            f"tube already has its {pool_size} member(s) (pool_size {pool_size})",
        )
    st.persons = (*persons, person_id)
    st.swabbed = (*(st.swabbed or ()), at)
    # Sites and districts are few and repeat in every sample: share one string of each.
    site, district = intern(event.site_id), intern(event.district)
    if st.district is None:
        st.district = district
    ctx.out.forwards.append((person_id, Sampled(
        at, tube_id, pool_size, site, event.site_lat, event.site_lon, district,
    )))
    first = st.first
    if first is None or at < first:
        st.first = at
        for stage, within in (("transport", ctx.policy.received_within),
                              ("result", ctx.policy.reported_within)):
            if st.sla is None or stage not in st.sla:
                open_req(st, intern(f"lab:{stage}"), at + within)
    if st.rep is not None:
        _apply_result(ctx, st, st.rep, [(person_id, at)], tube_id)
    keep_alive(ctx, st, at)
    return None


def on_lab(ctx: Context, st: TubeState, tube_id: str, event: Lab) -> None:
    at = event_time(ctx, event)
    first = st.rep
    # the tube's wait at its first report's lab is settled once that lab has both records
    # (agents/lab_waits.py keeps no wait then)
    settled = st.wait is None and first is not None and first.lab_id == event.lab_id
    if st.recv is None or at < st.recv:
        st.recv = at
    # The first report is the tube's result; a positive after another result replaces it:
    # a tube reported positive is positive (§4), whatever report came first (a lab's
    # correction, or two reports read in swapped order).
    if event.status == "reported" and (first is None or (
            event.result == "positive" and first.result != "positive")):
        # a city's labs are few: one string each, not one per tube
        st.rep = report = LabReport(at, event.result or "", intern(event.lab_id))
        swabbed = st.swabbed
        orphan_due = at + ctx.policy.orphan_after
        if first is None and (not swabbed or min(swabbed) > orphan_due):
            open_req(st, "orphan", orphan_due)  # (no generator per report)
        _apply_result(ctx, st, report, sorted(members(st)), tube_id)
    on_lab_record(ctx, st, event.lab_id, event.status, at, settled)  # what its lab must know
    keep_alive(ctx, st, at)


def on_action(ctx: Context, st: TubeState, tube_id: str, event: Action) -> None:
    """An operator's action on one of this tube's alerts; others are ignored (no state made).

    What the clock already reached fires first, so an alert due by now is raised (and its
    escalation open) before the action that handles it is looked at.
    """
    fire_due(ctx, st, tube_id, HANDLERS)
    escalation.on_action(ctx, st, event)


def _apply_result(
    ctx: Context,
    st: TubeState,
    report: LabReport,
    swabs: list[tuple[str, int]],
    tube_id: str,
) -> None:
    """Tell each member swabbed (person id, swab time) its result; raise a single tube's
    positive; ask pooled retests."""
    reported, result, lab_id = report.at, report.result, report.lab_id
    single = st.pool == 1
    district = st.district
    for person_id, sampled in swabs:
        ctx.out.forwards.append((person_id, Result(max(reported, sampled), tube_id, result)))
        if result == "positive" and single:
            if raise_alert(
                ctx, st, kind="positive", subject=person_id, due=reported, raised=sampled,
                person_id=person_id, tube_id=tube_id, district=district,
                details={"lab_id": lab_id, "collected_at": ctx.cal.iso(sampled),
                         "reported_at": ctx.cal.iso(reported), "pool_size": 1},
                escalate=False,  # the person's key owns it: actions arrive keyed by person
            ):
                ctx.out.contribute(district, reported, "positives")
                ctx.out.forwards.append((person_id, Escalate(
                    max(reported, sampled), alert_id("positive", person_id, reported),
                    escalation_entry("positive", reported, None, person_id, tube_id,
                                     district),
                )))
        elif result == "invalid" or (result == "positive" and not single):
            ctx.out.forwards.append((person_id, Retest(
                tube_id, reported, result, result == "positive", district,
            )))
    if result == "positive" and not single and swabs:
        _arm_pool(st, reported, tube_id, min(sampled for _, sampled in swabs))


def _arm_pool(st: TubeState, reported: int, tube_id: str, sampled: int) -> None:
    """Arm the ``pool_positive`` listing at the report, or at a swab taken after it."""
    if st.sent is not None and alert_id("pool_positive", tube_id, reported) in st.sent:
        return  # listed already: a member arriving later only needs its retest
    open_req_by(st, "pool", max(reported, sampled))


def _raise_pool_positive(ctx: Context, st: TubeState, report: LabReport, tube_id: str,
                         raised: int, members: list[str]) -> None:
    raise_alert(
        ctx, st, kind="pool_positive", subject=tube_id, due=report.at, raised=raised,
        tube_id=tube_id, district=st.district,
        details={"members": members, "pool_size": st.pool,
                 "lab_id": report.lab_id, "reported_at": ctx.cal.iso(report.at),
                 "retest_within_hours": ctx.policy.retest_within / 3600},
    )


def _lapse_pool(ctx: Context, st: TubeState, tube_id: str, name: str, due: int) -> int | None:
    """One alert listing the members swabbed by ``due`` (the report, or the first swab after
    it when none was taken before): never those swabbed later but applied before a lagging
    clock fired this, so the list does not depend on how far the clock lags."""
    if st.pool == 1 or st.rep is None:
        return None
    listed = sorted(person for person, sampled in members(st) if sampled <= due)
    if listed:
        _raise_pool_positive(ctx, st, st.rep, tube_id, due, listed)
        return None
    return min((sampled for sampled in st.swabbed or () if sampled > due), default=None)


def _lapse_lab(ctx: Context, st: TubeState, tube_id: str, name: str, due: int) -> int | None:
    stage = split_name(name)[1]
    within = ctx.policy.received_within if stage == "transport" else ctx.policy.reported_within
    first = st.first
    if first is None:
        return None  # (opened by a sampling, which sets it: never so)
    deadline = first + within
    if deadline > due:
        return deadline
    done = st.recv if stage == "transport" else (None if st.rep is None else st.rep.at)
    st.sla = _judged(st.sla, stage)
    if done is not None and done <= deadline:
        return None
    raise_alert(
        ctx, st, kind="lab_sla_breached", subject=tube_id, due=deadline, tube_id=tube_id,
        district=st.district,
        details={"stage": stage, "sla_hours": within / 3600,
                 "collected_at": ctx.cal.iso(first), "pool_size": st.pool},
    )
    return None


def _lapse_orphan(ctx: Context, st: TubeState, tube_id: str, name: str, due: int) -> int | None:
    """Only a swab taken by ``due`` prevents it: one taken later but applied before a lagging
    clock fired the check must not (the alert must not depend on how far the clock lags)."""
    if any(sampled <= due for sampled in st.swabbed or ()):
        return None
    report = st.rep
    if report is None:
        return None  # (opened by a report, which sets it: never so)
    raise_alert(
        ctx, st, kind="orphan_result", subject=tube_id, due=due, tube_id=tube_id,
        details={"lab_id": report.lab_id, "result": report.result,
                 "reported_at": ctx.cal.iso(report.at),
                 "orphan_after_hours": ctx.policy.orphan_after / 3600},
    )
    return None


def members(st: TubeState) -> list[tuple[str, int]]:
    """The tube's members and their swab times, (person id, swabbed at), in arrival order."""
    return list(zip(st.persons or (), st.swabbed or (), strict=True))


@lru_cache(maxsize=64)
def _judged(sla: tuple[str, ...] | None, stage: str) -> tuple[str, ...]:
    """``sla`` with ``stage`` added: one tuple for every tube that judged the same stages
    (a tuple of its own each, or a list, took ~96 bytes a tube)."""
    return (*(sla or ()), intern(stage))


HANDLERS: Final[dict[str, LapseHandler[TubeState]]] = {
    "lab": _lapse_lab,
    "pool": _lapse_pool,
    "orphan": _lapse_orphan,
    "wait": lapse_wait,
    "esc": escalation.lapse_escalation,
    "gc": lapse_gc,
}
