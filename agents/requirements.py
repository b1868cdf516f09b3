"""One idea for every loop: a requirement with a deadline.

A key's state (a typed struct, ``agents/state.py``: a Faust table value in the worker, a dict
entry in the embedded driver) holds ``req``: requirement name -> due epoch (None while none
is open), and the ``gc`` requirement's due apart, in ``gc_due``. Events add facts
and open requirements; when the clock reaches a due instant the loop's *lapse handler* looks at the
facts and either finds the requirement satisfied or raises an alert, and returns the next due
instant (a recurring requirement) or ``None`` (closed). Handlers re-check at fire time, so a
due instant that became stale because of a later fact is harmless (Flink's ``onTimer`` check).

A new rule is a new requirement name prefix with its handler: no new machinery. Escalation
is one too: every alert raised opens ``esc:<alert_id>`` on the key that owns its subject
(``agents/escalation.py`` judges it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from closedloop.agents.calendar import Calendar
from closedloop.agents.effects import Effects
from closedloop.agents.shared import Shared
from closedloop.agents.state import (
    EscalationEntry,
    Keyed,
    split_name,
)
from closedloop.schemas.events import Event
from closedloop.schemas.ids import alert_id
from closedloop.schemas.instants import epoch_seconds, shared
from closedloop.schemas.outputs import Alert, Escalation
from closedloop.schemas.policy import Policy

__all__ = [
    "Context",
    "LapseHandler",
    "close_req",
    "due_of",
    "escalation_entry",
    "event_time",
    "fire_due",
    "latest_in",
    "next_due",
    "open_escalation",
    "open_req",
    "open_req_by",
    "prune_early",
    "raise_alert",
    "split_name",
]

S = TypeVar("S", bound=Keyed)
LapseHandler = Callable[["Context", S, str, str, int], "int | None"]
"""``(ctx, state, key, requirement name, due) -> next due or None``: judges a lapse."""


@dataclass(slots=True)
class Context:
    """What a rule reads (policy, calendar, clock, the shared facts, the input at hand), and
    ``out``: where it puts what it makes (:class:`~closedloop.agents.effects.Effects`)."""

    policy: Policy
    cal: Calendar
    clock: int
    out: Effects = field(default_factory=Effects)
    catch_up_before: int | None = None  # wall mode: lapses due before the worker started
    shared: Shared = field(default_factory=Shared)  # areas and rounds (agents/shared.py)
    # The input being applied and its occurred_at in epoch seconds, when the runner already
    # converted it (for de-duplication and its clock): see event_time.
    event: object = None
    event_at: int = 0


def event_time(ctx: Context, event: Event) -> int:
    """``event``'s occurred_at in epoch seconds; the driver's conversion when it made one for
    this very event (a conversion costs a few hundred ns, on every input)."""
    if ctx.event is event:
        return ctx.event_at
    return epoch_seconds(event.occurred_at)


def open_req(st: Keyed, name: str, due: int) -> None:
    """Open (or move) requirement ``name``; its due is kept as the instant's shared int."""
    due = shared(due)
    reqs = st.req
    if reqs is None:
        st.req = {name: due}
    else:
        reqs[name] = due


def open_req_by(st: Keyed, name: str, due: int) -> None:
    """Open requirement ``name`` due by ``due``: moved earlier when it is open and due later,
    left as it is when it is open and due no later (a fact arriving late, but in time)."""
    current = due_of(st, name)
    if current is None or due < current:
        open_req(st, name, due)


def close_req(st: Keyed, name: str) -> None:
    reqs = st.req
    if reqs is not None:
        reqs.pop(name, None)
        if not reqs:
            st.req = None


def due_of(st: Keyed, name: str) -> int | None:
    """The due instant of the open requirement ``name`` (not ``gc``), or None."""
    reqs = st.req
    return None if reqs is None else reqs.get(name)


def next_due(st: Keyed) -> int | None:
    """The earliest open deadline of a key: what the deadline index holds for it."""
    reqs, gc_due = st.req, st.gc_due
    if not reqs:
        return gc_due
    due = min(reqs.values())
    return due if gc_due is None or due < gc_due else gc_due


def latest_in(times: list[int], low: int, high: int) -> int | None:
    """The latest of the sorted ``times`` in the window (low, high], or None."""
    index = bisect_right(times, high) - 1
    if index >= 0 and times[index] > low:
        return times[index]
    return None


def raise_alert(
    ctx: Context,
    st: Keyed,
    *,
    kind: str,
    subject: str,
    due: int,
    raised: int | None = None,
    person_id: str | None = None,
    tube_id: str | None = None,
    district: str | None = None,
    details: dict[str, Any] | None = None,
    escalate: bool = True,
) -> bool:
    """Emit an alert unless this key already emitted (kind, subject, due): ids are stable.

    An ``escalated`` alert goes to ``ctx.out.escalations`` (its own topic: the contract's
    ``alerts`` has its listed kinds). Any other alert opens its escalation on this key, unless
    ``escalate`` is False because another key owns the subject (it is forwarded there).
    """
    # an escalation is of one alert: two alerts of a subject escalating at one instant (one
    # raised when the other reached its second level) are two escalations, not one
    ident = (alert_id(kind, f"{subject}\x1f{details['alert_id']}", due)
             if kind == "escalated" and details is not None else alert_id(kind, subject, due))
    sent = st.sent
    if sent is None:
        st.sent = sent = {}
    elif ident in sent:
        return False
    sent[ident] = due
    if ctx.catch_up_before is not None and due < ctx.catch_up_before:
        details = {**(details or {}), "catch_up": True}
    raised_at = max(due, raised) if raised is not None else due
    fields: dict[str, Any] = {
        "alert_id": ident, "subject": subject, "person_id": person_id, "tube_id": tube_id,
        "district": district, "due_at": ctx.cal.iso(due), "raised_at": ctx.cal.iso(raised_at),
        "details": details or {},
    }
    if kind == "escalated":
        ctx.out.escalations.append(Escalation(kind="escalated", **fields))
        return True
    ctx.out.alerts.append(Alert(kind=kind, **fields))  # type: ignore[arg-type]
    if escalate:
        open_escalation(ctx, st, ident, escalation_entry(kind, due, details, person_id,
                                                         tube_id, district), raised_at)
    return True


def escalation_entry(
    kind: str,
    due: int,
    details: dict[str, Any] | None,
    person_id: str | None,
    tube_id: str | None,
    district: str | None,
) -> EscalationEntry:
    """What an open escalation remembers of its alert (small: it lives at most 2 windows).

    The hint (a test requirement, a lab stage, a retest's tube) says which facts would
    satisfy it.
    """
    extra = details or {}
    hint = extra.get("requirement") or extra.get("stage") or tube_id
    return EscalationEntry(kind, 2, due, hint, person_id, tube_id, district)


def open_escalation(
    ctx: Context, st: Keyed, ident: str, entry: EscalationEntry, raised: int
) -> None:
    """Arm level 2 of alert ``ident`` at ``raised`` + the policy's ``escalate_after``.

    An operator action that arrived before the alert was raised (``acts``) is taken over.
    """
    early = st.acts
    if early and ident in early:
        entry.acted = early.pop(ident)
    prune_early(ctx, st)
    if st.esc is None:
        st.esc = {}
    st.esc[ident] = entry
    open_req(st, f"esc:{ident}", raised + ctx.policy.escalate_after)


def prune_early(ctx: Context, st: Keyed) -> None:
    """Forget early actions no alert can claim any more: bounded state, junk ids included."""
    early = st.acts
    if early is None:
        return
    horizon = ctx.clock - ctx.policy.escalate_after
    for ident in [i for i, at in early.items() if at < horizon]:
        del early[ident]
        ctx.out.actions_dropped += 1
    if not early:
        st.acts = None


def prune_sent(st: Keyed, horizon: int) -> None:
    """Forget alert ids whose due instant is older than ``horizon`` (bounded state)."""
    sent = st.sent
    if sent:
        stale = [ident for ident, due in sent.items() if due < horizon]
        for ident in stale:
            del sent[ident]
        if not sent:
            st.sent = None


def fire_due(
    ctx: Context, st: S, key: str, handlers: Mapping[str, LapseHandler[S]]
) -> None:
    """Run every lapse handler whose due instant the clock has reached, earliest first.

    The order is that of (due, name) over ``req`` and ``gc`` together, as when ``gc`` was one
    of ``req``'s names: an output never depends on where a requirement is kept.
    """
    clock = ctx.clock
    while True:
        reqs, gc_due = st.req, st.gc_due
        if reqs:
            # the earliest (due, name): min over pairs in C, not a key function call per item
            due, name = min(zip(reqs.values(), reqs.keys(), strict=True))
            if gc_due is not None and (gc_due, "gc") < (due, name):
                due, name = gc_due, "gc"
        elif gc_due is not None:
            due, name = gc_due, "gc"
        else:
            return
        if due > clock:
            return
        kind = split_name(name)[0]
        following = handlers[kind](ctx, st, key, name, due)
        if following is not None and following <= due:
            raise AssertionError(f"lapse handler for {kind} did not move forward")
        if name == "gc":
            st.gc_due = following
        elif following is None:
            close_req(st, name)
        else:
            open_req(st, name, following)


def keep_alive(ctx: Context, st: Keyed, at: int, clock: int | None = None) -> None:
    """Note activity; the ``gc`` requirement forgets a key idle for ``state_retention``.

    Cheap on the hot path: it records the latest activity, and arms ``gc`` only once; the
    handler looks at the activity when it falls due and re-arms itself if need be.
    ``clock``: the clock the activity was read at, when not the context's (a combined
    part applied later, as its first part would have been).
    """
    if at > st.last:
        st.last = at
    if st.gc_due is None:  # one int object per instant (shared): every key has a gc due
        st.gc_due = shared(max(at, ctx.clock if clock is None else clock)
                           + ctx.policy.state_retention)


def lapse_gc(ctx: Context, st: Keyed, key: str, name: str, due: int) -> int | None:
    """Forget the key once it has been idle and nothing else is open; else look again later.

    An open escalation does not count: it never keeps a key alive (and ends within two
    ``escalate_after`` windows anyway), so escalation changes no other output.
    """
    idle_until = st.last + ctx.policy.state_retention
    prune_sent(st, ctx.clock - ctx.policy.state_retention)
    rules_open = any(not name.startswith("esc:") for name in st.req or ())
    if rules_open or idle_until > due:
        return shared(max(idle_until, due + ctx.policy.state_retention // 8))
    ctx.out.gone.add(key)
    return None
