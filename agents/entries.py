"""Entry checkpoints and sentinel clinics (CONTRACT.md §4, v1.1), keyed by ``person_id``.

- ``entry_without_proof``: no proof shown, a proof sampled after the entry, or one older than
  ``proof_valid`` at the entry; due at the entry.
- ``landing_test_missed``: no sampling in [entry, entry + ``landing_test_within``].
- Risk areas: when the clock passes the entry, each visited county's level *as of the entry*
  (agents/shared.py); a ``high`` or ``medium`` one puts the person under the travel-push loop
  as a push made at the entry (``details.source = "checkpoint"``).
- ``sentinel_untested``: no sampling in [visit, visit + ``sentinel_test_within`` of the
  facility kind].

Each record opens requirements named after its ``event_id`` (``entry:``, ``landing:``,
``sentinel:``) and keeps its facts until they are judged. Where the contract is silent
(docs/RULES.md): a proof sampled after the entry has a negative
``proof_age_hours``; of several counties at the highest level, the first in ``visited`` is the
push's ``origin``; two records of one person lapsing at one instant share one alert (its id is
(kind, subject, due_at), §5: the first record's), yet each lapse counts in its own district's
daily report (each record is one lapse, "one per checkpoint record").
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from closedloop.agents import travel
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    due_of,
    open_req,
    raise_alert,
)
from closedloop.agents.shared import LEVEL_RANK, level_at
from closedloop.agents.state import (
    Entry,
    PersonState,
    Visit,
    loops_of,
    sampled_between,
    split_name,
)
from closedloop.schemas.events import Checkpoint, Clinic, Risk, Travel
from closedloop.schemas.policy import Policy

__all__ = ["HANDLERS", "on_checkpoint", "on_clinic", "proof_age_hours", "without_proof"]

PUSHING_LEVELS: Final = ("high", "medium")


def on_checkpoint(ctx: Context, st: PersonState, person_id: str, event: Checkpoint) -> None:
    """An entry: counted now, judged when the clock passes it, tested within the window."""
    at = int(event.occurred_at.timestamp())
    proof = event.proof_sampled_at
    loops = loops_of(st)
    entries = loops.entries
    if entries is None:
        loops.entries = entries = {}
    entries[event.event_id] = Entry(
        at, event.checkpoint_id, event.district, event.role,
        None if proof is None else int(proof.timestamp()), list(event.visited))
    ctx.out.contribute(event.district, at, "checkpoint_entries")
    open_req(st, f"entry:{event.event_id}", at)
    open_req(st, f"landing:{event.event_id}", at + ctx.policy.landing_test_within)
    if st.district is None:
        st.district = event.district


def on_clinic(ctx: Context, st: PersonState, person_id: str, event: Clinic) -> None:
    """A sentinel visit: counted now; a sampling is due within the facility kind's window."""
    at = int(event.occurred_at.timestamp())
    loops = loops_of(st)
    visits = loops.visits
    if visits is None:
        loops.visits = visits = {}
    visits[event.event_id] = Visit(at, event.facility_id, event.facility_kind, event.district,
                                   event.reason)
    ctx.out.contribute(event.district, at, "sentinel_visits")
    open_req(st, f"sentinel:{event.event_id}",
             at + ctx.policy.sentinel_test_within[event.facility_kind])
    if st.district is None:
        st.district = event.district


def _forget_entry(st: PersonState, event_id: str, judged: str) -> None:
    """Drop an entry's facts once neither of its requirements is open any more."""
    other = "landing" if judged == "entry" else "entry"
    loops = st.loops
    if due_of(st, f"{other}:{event_id}") is not None or loops is None or loops.entries is None:
        return
    loops.entries.pop(event_id, None)
    if not loops.entries:
        loops.entries = None


def _entry(st: PersonState, event_id: str) -> Entry | None:
    loops = st.loops
    entries = None if loops is None else loops.entries
    return None if entries is None else entries.get(event_id)


def proof_age_hours(entry: Entry) -> float | None:
    """Hours from the proof's sampling to the entry, to 0.1 (negative: a proof from after it;
    never -0.0, which ``round`` gives for a proof under 3 minutes after the entry)."""
    return None if entry.proof is None else round((entry.at - entry.proof) / 3600, 1) + 0.0


def without_proof(policy: Policy, at: int, proof: int | None) -> bool:
    """No proof, a proof from after the entry at ``at``, or one older than ``proof_valid``."""
    return proof is None or proof > at or at - proof > policy.proof_valid


def _lapse_entry(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                 ) -> int | None:
    """The clock passed the entry: judge its proof, and its counties as of the entry."""
    event_id = split_name(name)[1]
    entry = _entry(st, event_id)
    if entry is None:
        return None
    if without_proof(ctx.policy, entry.at, entry.proof):
        raise_alert(ctx, st, kind="entry_without_proof", subject=person_id, due=entry.at,
                    person_id=person_id, district=entry.district,
                    details={"checkpoint_id": entry.checkpoint, "role": entry.role,
                             "proof_age_hours": proof_age_hours(entry)})
        ctx.out.contribute(entry.district, entry.at, "entries_without_proof")
    risky = [(LEVEL_RANK[level], -number, county)
             for number, county in enumerate(entry.visited)
             if (level := level_at(ctx.shared, county, entry.at, ctx.policy.state_retention))
             in PUSHING_LEVELS]
    if risky:
        rank, _, county = max(risky)
        risk: Risk = "high" if rank == LEVEL_RANK["high"] else "medium"
        instant = datetime.fromtimestamp(entry.at, ctx.cal.zone)
        push = Travel(event_id=event_id, occurred_at=instant, person_id=person_id,
                      district=entry.district, arrived_at=instant, origin=county, risk=risk)
        travel.on_travel(ctx, st, person_id, push, source="checkpoint")
    _forget_entry(st, event_id, "entry")
    return None


def _lapse_landing(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                   ) -> int | None:
    event_id = split_name(name)[1]
    entry = _entry(st, event_id)
    if entry is None:
        return None
    if not sampled_between(st, entry.at, due):
        raise_alert(ctx, st, kind="landing_test_missed", subject=person_id, due=due,
                    person_id=person_id, district=entry.district,
                    details={"checkpoint_id": entry.checkpoint, "role": entry.role})
        ctx.out.contribute(entry.district, due, "landing_tests_missed")
    _forget_entry(st, event_id, "landing")
    return None


def _lapse_sentinel(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                    ) -> int | None:
    event_id = split_name(name)[1]
    loops = st.loops
    visits = None if loops is None else loops.visits
    visit = None if visits is None else visits.pop(event_id, None)
    if loops is not None and visits is not None and not visits:
        loops.visits = None
    if visit is None:
        return None
    if not sampled_between(st, visit.at, due):
        raise_alert(ctx, st, kind="sentinel_untested", subject=person_id, due=due,
                    person_id=person_id, district=visit.district,
                    details={"facility_id": visit.facility, "facility_kind": visit.kind,
                             "reason": visit.reason})
        ctx.out.contribute(visit.district, due, "sentinel_untested")
    return None


HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {
    "entry": _lapse_entry,
    "landing": _lapse_landing,
    "sentinel": _lapse_sentinel,
}
