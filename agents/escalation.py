"""Escalation: an alert nobody handled within ``escalate_after`` goes up a level.

Every alert opens ``esc:<alert_id>`` on the key that owns its subject (``raise_alert``). When
it falls due the handler looks, by event time, for what would make escalating pointless:

- an operator ``action`` (ack or resolve) on that alert at or before the due instant;
- the alert's requirement satisfied by then (the person was located or followed up, a test
  or retest was taken, the tube arrived, got its result or found its sampling).

Otherwise it raises an ``escalated`` alert (``details`` = alert_id, alert_kind, level): level
2 at raised + ``escalate_after``, level 3 (city command) one more window later, then stops.
Positives, pooled positives and identity suspicions need a person to act: only an operator
action stops them. Escalated alerts go to the ``escalations`` topic, never to ``alerts``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from closedloop.agents.requirements import Context, State, prune_early, raise_alert
from closedloop.schemas.events import Action

__all__ = ["LAST_LEVEL", "holds", "lapse_escalation", "on_action", "satisfied"]

LAST_LEVEL: Final = 3
ESCALATED: Final = "escalated"

# Entry fields (see ``requirements.escalation_entry``).
_KIND, _LEVEL, _DUE, _HINT, _PERSON, _TUBE, _DISTRICT, _ACTED = range(8)

Satisfied = Callable[[Context, State, list[Any], int], bool]


def holds(st: State | None, alert_id: str) -> bool:
    """Does this key's state hold an open escalation of ``alert_id``?"""
    return st is not None and alert_id in st.get("esc", {})


def on_action(ctx: Context, st: State, event: Action) -> bool:
    """Record an operator's ack/resolve on the escalation it names; False if none is open.

    The earliest action counts: ack then resolve (or resolve alone) close it from then on.
    An action for a known key whose alert is not raised *yet* (its deadline is due but the
    clock, lagging by ``allowed_lateness``, has not fired it) is kept briefly in ``acts``,
    so the outcome does not depend on which of the two the engine saw first.
    """
    at = int(event.occurred_at.timestamp())
    entry = st.get("esc", {}).get(event.alert_id)
    if entry is None:
        if st:
            early: dict[str, int] = st.setdefault("acts", {})
            early[event.alert_id] = min(at, early.get(event.alert_id, at))
            prune_early(ctx, st)
        return False
    if entry[_ACTED] is None or at < entry[_ACTED]:
        entry[_ACTED] = at
    return True


def _forget(st: State, ident: str) -> None:
    entries = st.get("esc", {})
    entries.pop(ident, None)
    if not entries:
        st.pop("esc", None)


def lapse_escalation(ctx: Context, st: State, key: str, name: str, due: int) -> int | None:
    """Escalate the alert unless it was handled or satisfied by ``due``; re-arm once."""
    ident = name.split(":", 1)[1]
    entry = st.get("esc", {}).get(ident)
    if entry is None:
        return None
    acted = entry[_ACTED]
    if (acted is not None and acted <= due) or satisfied(ctx, st, entry, due):
        _forget(st, ident)
        return None
    level: int = entry[_LEVEL]
    raise_alert(
        ctx, st, kind=ESCALATED, subject=key, due=due, person_id=entry[_PERSON],
        tube_id=entry[_TUBE], district=entry[_DISTRICT],
        details={"alert_id": ident, "alert_kind": entry[_KIND], "level": level},
    )
    if level >= LAST_LEVEL:
        _forget(st, ident)
        return None
    entry[_LEVEL] = level + 1
    return due + ctx.policy.escalate_after


def satisfied(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    """Was the alert's requirement met at or before ``until`` (event time)?"""
    judge = _SATISFIED.get(entry[_KIND])
    return judge is not None and judge(ctx, st, entry, until)


def _by(instant: int | None, until: int) -> bool:
    return instant is not None and instant <= until


# Travel alerts are judged on records between the alert's due instant and ``until``, not
# against the person's current push: a re-push after ``until``, applied before a lagging clock
# fired the escalation, must not change the outcome. (A record before the due instant would
# have prevented the alert.)


def _released(st: State, entry: list[Any], until: int) -> bool:
    return any(entry[_DUE] <= at <= until for at in st.get("released", []))


def _located(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    return (any(entry[_DUE] < at <= until for at in st.get("located", []))
            or _released(st, entry, until))


def _followed_up(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    lapsed_since = entry[_DUE] - ctx.policy.followup_every
    clears = st.get("clears", [])
    return any(lapsed_since < at <= until for at in clears) or _released(st, entry, until)


def _sampled_since(st: State, since: int, until: int, other_than: str | None = None) -> bool:
    return any(since <= s[0] <= until and s[1] != other_than for s in st.get("samples", []))


def _tested(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    requirement = str(entry[_HINT] or "")
    if requirement.startswith("cohort:"):
        window = ctx.policy.cohorts.get(requirement.split(":", 1)[1], 86_400)
        return _sampled_since(st, entry[_DUE] - window, until)
    return _sampled_since(st, entry[_DUE] - 86_400, until) or _released(st, entry, until)


def _retested(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    since = entry[_DUE] - ctx.policy.retest_within
    return _sampled_since(st, since, until, other_than=entry[_HINT])


def _tube_progressed(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    if entry[_HINT] == "transport":
        return _by(st.get("recv"), until)
    return "rep" in st and _by(st["rep"][0], until)


def _sampling_found(ctx: Context, st: State, entry: list[Any], until: int) -> bool:
    return any(at <= until for at in st.get("members", {}).values())


_SATISFIED: Final[dict[str, Satisfied]] = {
    "unlocated": _located,
    "followup_overdue": _followed_up,
    "test_missed": _tested,
    "retest_missed": _retested,
    "lab_sla_breached": _tube_progressed,
    "orphan_result": _sampling_found,
}
"""How each kind is satisfied; kinds absent here (positive, pool_positive,
identity_suspect) need an operator's action."""
