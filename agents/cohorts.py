"""Key populations (重点人群应检尽检), CONTRACT.md §4.

While a person is an active member of a cohort a sampling is due every ``test_every``: first
due = enrolment + test_every; each sampling moves it to sampled time + test_every;
``test_missed`` (``details.requirement = "cohort:<name>"``) at the due time and again every
further ``test_every`` while none arrives; ``active: false`` ends it.

Where the contract is silent: an activation while already active keeps the enrolment (only the
district is updated); a lapse at or after the leaving instant raises nothing; a sampling at
exactly the due instant is in time.
"""

from __future__ import annotations

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

__all__ = ["HANDLERS", "on_cohort"]


def on_cohort(ctx: Context, st: State, person_id: str, event: Cohort) -> None:
    at = int(event.occurred_at.timestamp())
    memberships: dict[str, Any] = st.setdefault("cohorts", {})
    member = memberships.get(event.cohort)
    name = f"cohort:{event.cohort}"
    if event.active:
        if member is None or (member["until"] is not None and member["until"] <= at):
            memberships[event.cohort] = {
                "district": event.district, "since": at, "until": None, "anchor": at, "floor": at,
            }
            open_req(st, name, at + ctx.policy.cohorts[event.cohort])
        else:
            member["district"] = event.district
        st["district"] = event.district
    elif member is not None and member["until"] is None and at >= member["since"]:
        member["until"] = at
        due = st.get("req", {}).get(name)
        if due is not None and due >= at:
            close_req(st, name)
            del memberships[event.cohort]
    if not memberships:
        st.pop("cohorts", None)


def _lapse_cohort(ctx: Context, st: State, person_id: str, name: str, due: int) -> int | None:
    cohort = name.split(":", 1)[1]
    memberships = st.get("cohorts", {})
    member = memberships.get(cohort)
    if member is None:
        return None
    if member["until"] is not None and member["until"] <= due:
        del memberships[cohort]
        if not memberships:
            st.pop("cohorts", None)
        return None
    every = ctx.policy.cohorts.get(cohort)
    if every is None:  # the policy no longer defines this cohort: nothing is required
        return None
    times = [s[0] for s in st.get("samples", [])]
    sampled = latest_in(times, max(member["anchor"], member["floor"]), due)
    if sampled is not None:
        member["anchor"] = sampled
        return sampled + every
    if raise_alert(
        ctx, st, kind="test_missed", subject=person_id, due=due, person_id=person_id,
        district=member["district"],
        details={
            "requirement": name,
            "cohort": cohort,
            "test_every_hours": every / 3600,
            "last_sampled_at": ctx.cal.iso(member["anchor"])
            if member["anchor"] != member["since"] else None,
        },
    ):
        ctx.contribute(member["district"], due, "tests_missed")
    member["floor"] = due
    return due + every


HANDLERS: Final[dict[str, LapseHandler]] = {"cohort": _lapse_cohort}
