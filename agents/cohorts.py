"""Key populations (重点人群应检尽检), CONTRACT.md §4.

While a person is an active member of a cohort a sampling is due every ``test_every``: first
due = enrolment + test_every; each sampling moves it to sampled time + test_every;
``test_missed`` (``details.requirement = "cohort:<name>"``) at the due time and again every
further ``test_every`` while none arrives; ``active: false`` ends it.

Where the contract is silent: an activation while already active keeps the enrolment (only the
district is updated); a lapse at or after the leaving instant raises nothing; a sampling at
exactly the due instant is in time; a leave and a join at the same instant leave the person
a member.
"""

from __future__ import annotations

from bisect import insort
from typing import Any, Final

from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    State,
    close_req,
    latest_in,
    open_req,
    raise_alert,
)
from closedloop.schemas.events import Cohort

__all__ = ["HANDLERS", "active_cohorts", "on_cohort"]

KEEP_CHANGES: Final = 8  # roster changes remembered per cohort, enough for any reordering


def active_cohorts(st: State) -> list[str]:
    """Cohorts the person is an active member of now."""
    return sorted(
        name for name, member in st.get("cohorts", {}).items()
        if member["since"] is not None and member["until"] is None
    )


def on_cohort(ctx: Context, st: State, person_id: str, event: Cohort) -> None:
    """Record the roster change, then derive the current membership from all changes.

    Membership is computed from the changes sorted by time (a leave sorts before a join at the
    same instant), so it does not depend on the order in which they arrived.
    """
    at = int(event.occurred_at.timestamp())
    memberships: dict[str, Any] = st.setdefault("cohorts", {})
    member = memberships.get(event.cohort)
    if member is None:
        member = memberships[event.cohort] = {
            "district": event.district, "changes": [], "since": None, "until": None,
            "anchor": None, "floor": None,
        }
    insort(member["changes"], [at, event.active, event.district])
    del member["changes"][:-KEEP_CHANGES]
    if event.active:
        st["district"] = event.district
    since, until, district = _current_interval(member["changes"])
    if district is not None:
        member["district"] = district
    name = f"cohort:{event.cohort}"
    due = st.get("req", {}).get(name)
    chain = next((iv for iv in _intervals(member["changes"]) if iv[0] == member["since"]), None)
    if since is None:
        close_req(st, name)
        member["since"] = member["until"] = None
    elif since != member["since"] and chain is not None and due is not None and (
        chain[1] is None or due < chain[1]
    ):
        # A leave and re-join after the pending due instant: that lapse (and any before the
        # leave) is still owed, however late the clock fires it; the handler moves on.
        member["until"] = chain[1]
    elif since != member["since"]:
        member.update(since=since, until=until, anchor=since, floor=since)
        open_req(st, name, since + ctx.policy.cohorts[event.cohort])
    else:
        member["until"] = until
        due = st.get("req", {}).get(name)
        if until is not None and due is not None and due >= until:
            close_req(st, name)


def _intervals(changes: list[list[Any]]) -> list[list[Any]]:
    """The membership intervals [since, until, district] of sorted (time, active, district)
    changes, each with the district of its latest join."""
    intervals: list[list[Any]] = []
    for at, active, where in changes:
        if active and (not intervals or intervals[-1][1] is not None):
            intervals.append([at, None, where])
        elif active:
            intervals[-1][2] = where
        elif intervals and intervals[-1][1] is None:
            intervals[-1][1] = at
    return intervals


def _current_interval(
    changes: list[list[Any]],
) -> tuple[int | None, int | None, str | None]:
    """The latest membership interval [since, until) with the district of its latest join."""
    intervals = _intervals(changes)
    if not intervals:
        return None, None, None
    since, until, district = intervals[-1]
    return since, until, district


def _district_at(changes: list[list[Any]], instant: int) -> str | None:
    """The district of the latest join at or before ``instant`` (what was known by then)."""
    district = None
    for at, active, where in changes:
        if at > instant:
            break
        if active:
            district = where
    return district


def _lapse_cohort(ctx: Context, st: State, person_id: str, name: str, due: int) -> int | None:
    cohort = name.split(":", 1)[1]
    member = st.get("cohorts", {}).get(cohort)
    every = ctx.policy.cohorts.get(cohort)
    if member is None or member["since"] is None or every is None:
        return None  # (every None: the policy no longer defines this cohort)
    following: int | None = due
    while following is not None and following <= due:  # a later interval's first due passed
        following = _judge(ctx, st, person_id, name, member, every, following)
    return following


def _next_interval(member: dict[str, Any], every: int) -> int | None:
    """After the chain's interval ended, start the next one (a re-join that was applied
    before the clock fired the old interval's lapses); its first due instant, or None."""
    later = [iv for iv in _intervals(member["changes"]) if iv[0] > member["since"]]
    if not later:
        return None
    since, until, _ = later[0]
    member.update(since=since, until=until, anchor=since, floor=since)
    first: int = since + every
    return first


def _judge(
    ctx: Context, st: State, person_id: str, name: str, member: dict[str, Any], every: int,
    due: int,
) -> int | None:
    """The lapse at ``due`` of the member's current chain; the next due instant or None."""
    if member["until"] is not None and member["until"] <= due:
        return _next_interval(member, every)
    cohort = name.split(":", 1)[1]
    times = [s[0] for s in st.get("samples", [])]
    sampled = latest_in(times, max(member["anchor"], member["floor"]), due)
    if sampled is not None:
        member["anchor"] = sampled
        return sampled + every
    district = _district_at(member["changes"], due) or member["district"]
    if raise_alert(
        ctx, st, kind="test_missed", subject=person_id, due=due, person_id=person_id,
        district=district,
        details={
            "requirement": name,
            "cohort": cohort,
            "test_every_hours": every / 3600,
            "last_sampled_at": ctx.cal.iso(member["anchor"])
            if member["anchor"] != member["since"] else None,
        },
    ):
        ctx.contribute(district, due, "tests_missed")
    member["floor"] = due
    return due + every


HANDLERS: Final[dict[str, LapseHandler]] = {"cohort": _lapse_cohort}
