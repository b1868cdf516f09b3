"""One idea for every loop: a requirement with a deadline.

A key's state (a plain JSON-able dict: a Faust table value in the worker, a dict entry in the
embedded driver) holds ``req``: requirement name -> due epoch. Events add facts and open
requirements; when the clock reaches a due instant the loop's *lapse handler* looks at the
facts and either finds the requirement satisfied or raises an alert, and returns the next due
instant (a recurring requirement) or ``None`` (closed). Handlers re-check at fire time, so a
due instant that became stale because of a later fact is harmless (Flink's ``onTimer`` check).

A new rule is a new requirement name prefix with its handler: no new machinery.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from closedloop.agents.calendar import Calendar
from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert, DailyReport
from closedloop.schemas.policy import Policy

__all__ = [
    "Context",
    "LapseHandler",
    "State",
    "close_req",
    "fire_due",
    "latest_in",
    "next_due",
    "open_req",
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
) -> bool:
    """Emit an alert unless this key already emitted (kind, subject, due): ids are stable."""
    ident = alert_id(kind, subject, due)
    sent = st.setdefault("sent", {})
    if ident in sent:
        return False
    sent[ident] = due
    if ctx.catch_up_before is not None and due < ctx.catch_up_before:
        details = {**(details or {}), "catch_up": True}
    ctx.alerts.append(
        Alert(
            alert_id=ident,
            kind=kind,  # type: ignore[arg-type]
            subject=subject,
            person_id=person_id,
            tube_id=tube_id,
            district=district,
            due_at=ctx.cal.iso(due),
            raised_at=ctx.cal.iso(max(due, raised) if raised is not None else due),
            details=details or {},
        )
    )
    return True


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
    """Forget the key once it has been idle and nothing else is open; else look again later."""
    idle_until: int = st.get("last", 0) + ctx.policy.state_retention
    prune_sent(st, ctx.clock - ctx.policy.state_retention)
    if len(st.get("req", {})) > 1 or idle_until > due:
        return max(idle_until, due + ctx.policy.state_retention // 8)
    st["gone"] = True
    return None
