"""One idea for every loop: a requirement with a deadline.

A key's state (a plain JSON-able dict: a Faust table value in the worker, a dict entry in the
embedded driver) holds ``req``: requirement name -> due epoch. Events add facts and open
requirements; when the clock reaches a due instant the loop's *lapse handler* looks at the
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
from typing import Any

from closedloop.agents.calendar import Calendar
from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert, DailyReport, Escalation
from closedloop.schemas.policy import Policy

__all__ = [
    "Context",
    "LapseHandler",
    "State",
    "close_req",
    "escalation_entry",
    "fire_due",
    "latest_in",
    "next_due",
    "open_escalation",
    "open_req",
    "prune_early",
    "raise_alert",
]

State = dict[str, Any]
LapseHandler = Callable[["Context", State, str, str, int], "int | None"]


@dataclass(slots=True)
class Context:
    """What a rule may read (policy, calendar, clock) and where it puts what it produces."""

    policy: Policy
    cal: Calendar
    clock: int
    alerts: list[Alert] = field(default_factory=list)
    forwards: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    contributions: list[dict[str, Any]] = field(default_factory=list)
    reports: list[DailyReport] = field(default_factory=list)
    escalations: list[Alert] = field(default_factory=list)
    catch_up_before: int | None = None  # wall mode: lapses due before the worker started

    def contribute(self, district: str | None, at: int, name: str, delta: int = 1) -> None:
        """Count ``delta`` for the daily report of ``district`` at event time ``at``."""
        if district is not None and delta:
            self.contributions.append({"district": district, "at": at, "field": name, "d": delta})


def open_req(st: State, name: str, due: int) -> None:
    st.setdefault("req", {})[name] = due


def close_req(st: State, name: str) -> None:
    reqs = st.get("req")
    if reqs is not None:
        reqs.pop(name, None)


def next_due(st: Mapping[str, Any]) -> int | None:
    """The earliest open deadline of a key: what the deadline index holds for it."""
    reqs = st.get("req")
    return min(reqs.values()) if reqs else None


def latest_in(times: list[int], low: int, high: int) -> int | None:
    """The latest of the sorted ``times`` in the window (low, high], or None."""
    index = bisect_right(times, high) - 1
    if index >= 0 and times[index] > low:
        return times[index]
    return None


def raise_alert(
    ctx: Context,
    st: State,
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

    An ``escalated`` alert goes to ``ctx.escalations`` (its own topic: the contract's
    ``alerts`` has nine kinds). Any other alert opens its escalation on this key, unless
    ``escalate`` is False because another key owns the subject (it is forwarded there).
    """
    ident = alert_id(kind, subject, due)
    sent = st.setdefault("sent", {})
    if ident in sent:
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
        ctx.escalations.append(Escalation(kind="escalated", **fields))
        return True
    ctx.alerts.append(Alert(kind=kind, **fields))  # type: ignore[arg-type]
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
) -> list[Any]:
    """What an open escalation remembers of its alert (small: it lives at most 2 windows).

    [kind, next level, alert due, hint, person_id, tube_id, district, acted_at]; the hint
    (a test requirement, a lab stage, a retest's tube) says which facts would satisfy it.
    """
    extra = details or {}
    hint = extra.get("requirement") or extra.get("stage") or tube_id
    return [kind, 2, due, hint, person_id, tube_id, district, None]


def open_escalation(ctx: Context, st: State, ident: str, entry: list[Any], raised: int) -> None:
    """Arm level 2 of alert ``ident`` at ``raised`` + the policy's ``escalate_after``.

    An operator action that arrived before the alert was raised (``acts``) is taken over.
    """
    early = st.get("acts")
    if early and ident in early:
        entry[-1] = early.pop(ident)
    prune_early(ctx, st)
    st.setdefault("esc", {})[ident] = entry
    open_req(st, f"esc:{ident}", raised + ctx.policy.escalate_after)


def prune_early(ctx: Context, st: State) -> None:
    """Forget early actions no alert can claim any more: bounded state, junk ids included."""
    early = st.get("acts")
    if early is None:
        return
    horizon = ctx.clock - ctx.policy.escalate_after
    for ident in [i for i, at in early.items() if at < horizon]:
        del early[ident]
    if not early:
        del st["acts"]


def prune_sent(st: State, horizon: int) -> None:
    """Forget alert ids whose due instant is older than ``horizon`` (bounded state)."""
    sent = st.get("sent")
    if sent:
        stale = [ident for ident, due in sent.items() if due < horizon]
        for ident in stale:
            del sent[ident]
        if not sent:
            del st["sent"]


def fire_due(
    ctx: Context, st: State, key: str, handlers: Mapping[str, LapseHandler]
) -> None:
    """Run every lapse handler whose due instant the clock has reached, earliest first."""
    reqs = st.get("req")
    if not reqs or min(reqs.values()) > ctx.clock:
        return
    while reqs:
        name, due = min(reqs.items(), key=lambda item: (item[1], item[0]))
        if due > ctx.clock:
            return
        handler = handlers[name.split(":", 1)[0]]
        following = handler(ctx, st, key, name, due)
        if following is None:
            reqs.pop(name, None)
        elif following <= due:
            raise AssertionError(f"lapse handler for {name.split(':')[0]} did not move forward")
        else:
            reqs[name] = following


def keep_alive(ctx: Context, st: State, at: int) -> None:
    """Note activity; the ``gc`` requirement forgets a key idle for ``state_retention``.

    Cheap on the hot path: it records the latest activity, and arms ``gc`` only once; the
    handler looks at the activity when it falls due and re-arms itself if need be.
    """
    if at > st.get("last", 0):
        st["last"] = at
    reqs = st.get("req")
    if reqs is None:
        st["req"] = reqs = {}
    if "gc" not in reqs:
        reqs["gc"] = max(at, ctx.clock) + ctx.policy.state_retention


def lapse_gc(ctx: Context, st: State, key: str, name: str, due: int) -> int | None:
    """Forget the key once it has been idle and nothing else is open; else look again later.

    An open escalation does not count: it never keeps a key alive (and ends within two
    ``escalate_after`` windows anyway), so escalation changes no other output.
    """
    idle_until: int = st.get("last", 0) + ctx.policy.state_retention
    prune_sent(st, ctx.clock - ctx.policy.state_retention)
    rules_open = sum(1 for name in st.get("req", {}) if not name.startswith("esc:"))
    if rules_open > 1 or idle_until > due:
        return max(idle_until, due + ctx.policy.state_retention // 8)
    st["gone"] = True
    return None
