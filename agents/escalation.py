"""Escalation: an alert nobody handled within ``escalate_after`` goes up a level.

Every alert opens ``esc:<alert_id>`` on the key that owns its subject (``raise_alert``). When
it falls due the handler looks, by event time, for what would make escalating pointless:

- an operator ``action`` (ack or resolve) on that alert at or before the due instant;
- the alert's requirement satisfied by then (the person was located or followed up, a test
  or retest was taken, the tube arrived, got its result or found its sampling).

Otherwise it raises an ``escalated`` alert (``details`` = alert_id, alert_kind, level): level
2 at raised + ``escalate_after``, level 3 (city command) one more window later, then stops.
Positives, pooled positives, identity suspicions and late sources need a person to act: only
an operator action stops them; a silent lab's escalation ends also when the lab reports
again. Escalated alerts go to the ``escalations`` topic, never to ``alerts``.

An action applies only where its subject's state holds the alert (``agents/actions.py``, the
rule the ledger follows too); :func:`action_outcome` says why one was ignored. ``assign``
hands an alert to an operator and changes no escalation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from closedloop.agents.entry import EntryState, reported_again
from closedloop.agents.requirements import Context, prune_early, raise_alert
from closedloop.agents.state import (
    EscalationEntry,
    Keyed,
    PersonState,
    TubeState,
    is_blank,
    sampled_between,
    split_name,
)
from closedloop.schemas.events import Action

__all__ = ["ENGINE_REASONS", "LAST_LEVEL", "action_outcome", "lapse_escalation", "on_action",
           "satisfied"]

LAST_LEVEL: Final = 3
ENGINE_REASONS: Final = ("not_subjects_alert", "escalation_over")
"""The reasons of ``agents/actions.py`` the engine gives for an ignored action."""
ESCALATED: Final = "escalated"

Satisfied = Callable[[Context, Keyed, EscalationEntry, int], bool]


def action_outcome(
    states: Iterable[object], alert_id: str, at: int, escalate_after: int
) -> str | None:
    """Why an action on ``alert_id`` taken at ``at`` was ignored by the keys it reached
    (``states``: the subject's state in each stage that read it, None where the stage does
    not hold it), or None when one of them holds the alert's open escalation with a level
    still to stop, or keeps the action for the alert it is about to raise. Read after the
    action was applied.

    ``escalation_over``: the subject raised the alert but its escalation has ended (met, an
    earlier action, or level 3), or every level left falls due before ``at`` (firing lags
    the clock: those levels are raised all the same); ``not_subjects_alert``: the subject
    holds no such alert (an unknown id, or another subject's). Names from
    ``agents/actions.py``'s REASONS.
    """
    over = False
    for st in states:
        if not isinstance(st, Keyed):
            continue
        entry = None if st.esc is None else st.esc.get(alert_id)
        if entry is not None:
            due = (st.req or {}).get(f"esc:{alert_id}")
            if due is None or at <= due + (LAST_LEVEL - entry.level) * escalate_after:
                return None
            over = True
        elif st.acts is not None and alert_id in st.acts:
            return None
        over = over or (st.sent is not None and alert_id in st.sent)
    return "escalation_over" if over else "not_subjects_alert"


def on_action(ctx: Context, st: Keyed, event: Action) -> bool:
    """Record an operator's ack/resolve on the escalation it names; False if none is open
    (and for ``assign``, which changes no escalation).

    The earliest action counts: ack then resolve (or resolve alone) close it from then on.
    An action for a known key whose alert is not raised *yet* (its deadline is due but the
    clock, lagging by ``allowed_lateness``, has not fired it) is kept briefly in ``acts``,
    so the outcome does not depend on which of the two the engine saw first.
    """
    if event.action not in ("ack", "resolve"):
        return False
    at = int(event.occurred_at.timestamp())
    entry = None if st.esc is None else st.esc.get(event.alert_id)
    if entry is None:
        raised = st.sent is not None and event.alert_id in st.sent  # and its escalation over
        if not raised and not is_blank(st):  # a key this stage knows (blank: never stored)
            early = st.acts
            if early is None:
                st.acts = early = {}
            early[event.alert_id] = min(at, early.get(event.alert_id, at))
            prune_early(ctx, st)
        return False
    if entry.acted is None or at < entry.acted:
        entry.acted = at
    return True


def _forget(st: Keyed, ident: str) -> None:
    entries = st.esc
    if entries is not None:
        entries.pop(ident, None)
        if not entries:
            st.esc = None


def lapse_escalation(ctx: Context, st: Keyed, key: str, name: str, due: int) -> int | None:
    """Escalate the alert unless it was handled or satisfied by ``due``; re-arm once."""
    ident = split_name(name)[1]
    entry = None if st.esc is None else st.esc.get(ident)
    if entry is None:
        return None
    acted = entry.acted
    if (acted is not None and acted <= due) or satisfied(ctx, st, entry, due):
        _forget(st, ident)
        return None
    level = entry.level
    raise_alert(
        ctx, st, kind=ESCALATED, subject=key, due=due, person_id=entry.person_id,
        tube_id=entry.tube_id, district=entry.district,
        details={"alert_id": ident, "alert_kind": entry.kind, "level": level},
    )
    if level >= LAST_LEVEL:
        _forget(st, ident)
        return None
    entry.level = level + 1
    return due + ctx.policy.escalate_after


def satisfied(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    """Was the alert's requirement met at or before ``until`` (event time)?"""
    judge = _SATISFIED.get(entry.kind)
    return judge is not None and judge(ctx, st, entry, until)


def _by(instant: int | None, until: int) -> bool:
    return instant is not None and instant <= until


# Travel alerts are judged on records between the alert's due instant and ``until``, not
# against the person's current push: a re-push after ``until``, applied before a lagging clock
# fired the escalation, must not change the outcome. (A record before the due instant would
# have prevented the alert.) Person kinds are only raised on person keys, tube kinds on tubes.


def _released(st: PersonState, entry: EscalationEntry, until: int) -> bool:
    loops = st.loops
    return loops is not None and any(entry.due <= at <= until for at in loops.released or ())


def _located(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, PersonState) or st.loops is None:
        return False
    return (any(entry.due < at <= until for at in st.loops.located or ())
            or _released(st, entry, until))


def _followed_up(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, PersonState) or st.loops is None:
        return False
    lapsed_since = entry.due - ctx.policy.followup_every
    return (any(lapsed_since < at <= until for at in st.loops.clears or ())
            or _released(st, entry, until))


def _tested(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, PersonState):
        return False
    requirement = entry.hint or ""
    if requirement.startswith("cohort:"):
        window = ctx.policy.cohorts.get(split_name(requirement)[1], 86_400)
        return sampled_between(st, entry.due - window, until)
    return sampled_between(st, entry.due - 86_400, until) or _released(st, entry, until)


def _retested(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, PersonState):
        return False
    since = entry.due - ctx.policy.retest_within
    return sampled_between(st, since, until, other_than=entry.hint)


def _tube_progressed(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, TubeState):
        return False
    if entry.hint == "transport":
        return _by(st.recv, until)
    return st.rep is not None and _by(st.rep.at, until)


def _sampling_found(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    if not isinstance(st, TubeState):
        return False
    return any(at <= until for at in st.swabbed or ())


def _sampled_after(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    """A landing or sentinel test taken late, after the window ended, still closes it."""
    return isinstance(st, PersonState) and sampled_between(st, entry.due, until)
def _caught_up(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    """round_missed: a catch-up sampling after the close (agents/rounds.py)."""
    return isinstance(st, PersonState) and sampled_between(st, entry.due + 1, until)


def _lab_reported(ctx: Context, st: Keyed, entry: EscalationEntry, until: int) -> bool:
    """lab_silent: the lab reported again, which ends its silence (agents/entry.py)."""
    return isinstance(st, EntryState) and st.lab is not None and reported_again(
        st.lab, entry.due, until)


_SATISFIED: Final[dict[str, Satisfied]] = {
    "unlocated": _located,
    "followup_overdue": _followed_up,
    "test_missed": _tested,
    "retest_missed": _retested,
    "round_missed": _caught_up,
    "lab_sla_breached": _tube_progressed,
    "orphan_result": _sampling_found,
    "landing_test_missed": _sampled_after,
    "sentinel_untested": _sampled_after,
    "lab_silent": _lab_reported,
}
"""How each kind is satisfied; kinds absent here (positive, pool_positive,
identity_suspect, entry_without_proof, late_entries) need an operator's action."""
