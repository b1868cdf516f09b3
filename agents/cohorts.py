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
    if since is None:
        close_req(st, name)
        member["since"] = member["until"] = None
    elif since != member["since"]:
        member.update(since=since, until=until, anchor=since, floor=since)
        open_req(st, name, since + ctx.policy.cohorts[event.cohort])
    else:
        member["until"] = until
        due = st.get("req", {}).get(name)
        if until is not None and due is not None and due >= until:
            close_req(st, name)


def _current_interval(
    changes: list[list[Any]],
) -> tuple[int | None, int | None, str | None]:
    """The latest membership interval [since, until) of sorted (time, active, district)
    changes, with the district of its latest join."""
    since: int | None = None
    until: int | None = None
    district: str | None = None
    for at, active, where in changes:
        if active and (since is None or until is not None):
            since, until, district = at, None, where
        elif active and until is None:
            district = where
        elif not active and since is not None and until is None:
            until = at
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
    memberships = st.get("cohorts", {})
    member = memberships.get(cohort)
    if member is None or member["since"] is None:
        return None
    if member["until"] is not None and member["until"] <= due:
        return None
    every = ctx.policy.cohorts.get(cohort)
    if every is None:  # the policy no longer defines this cohort: nothing is required
        return None
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
