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
from sys import intern
from typing import Final

from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    close_req,
    due_of,
    latest_in,
    open_req,
    raise_alert,
)
from closedloop.agents.state import Change, Membership, PersonState, loops_of, split_name
from closedloop.schemas.events import Cohort

__all__ = ["HANDLERS", "active_cohorts", "on_cohort"]

KEEP_CHANGES: Final = 8  # roster changes remembered per cohort, enough for any reordering

Span = tuple[int, int | None, str]
"""A membership interval: (since, until or None while open, district of its latest join)."""


def active_cohorts(st: PersonState) -> list[str]:
    """Cohorts the person is an active member of now."""
    loops = st.loops
    return sorted(
        name for name, member in ((loops.cohorts if loops is not None else None) or {}).items()
        if member.since is not None and member.until is None
    )


def on_cohort(ctx: Context, st: PersonState, person_id: str, event: Cohort) -> None:
    """Record the roster change, then derive the current membership from all changes.

    Membership is computed from the changes sorted by time (a leave sorts before a join at the
    same instant), so it does not depend on the order in which they arrived.
    """
    at = int(event.occurred_at.timestamp())
    loops = loops_of(st)
    memberships = loops.cohorts
    if memberships is None:
        loops.cohorts = memberships = {}
    member = memberships.get(event.cohort)
    if member is None:
        member = memberships[event.cohort] = Membership(district=event.district, changes=[])
    insort(member.changes, Change(at, event.active, intern(event.district)))
    del member.changes[:-KEEP_CHANGES]
    if event.active:
        st.district = event.district
    since, until, district = _current_interval(member.changes)
    if district is not None:
        member.district = district
    name = f"cohort:{event.cohort}"
    due = due_of(st, name)
    chain = next((iv for iv in _intervals(member.changes) if iv[0] == member.since), None)
    if since is None:
        close_req(st, name)
        member.since = member.until = None
    elif since != member.since and chain is not None and due is not None and (
        chain[1] is None or due < chain[1]
    ):
        # A leave and re-join after the pending due instant: that lapse (and any before the
        # leave) is still owed, however late the clock fires it; the handler moves on.
        member.until = chain[1]
    elif since != member.since:
        _start(member, since, until)
        open_req(st, name, since + ctx.policy.cohorts[event.cohort])
    else:
        member.until = until
        due = due_of(st, name)
        if until is not None and due is not None and due >= until:
            close_req(st, name)


def _start(member: Membership, since: int, until: int | None) -> None:
    """Make [since, until) the chain's interval, judged from its start."""
    member.since, member.until, member.anchor, member.floor = since, until, since, since


def _intervals(changes: list[Change]) -> list[Span]:
    """The membership intervals of sorted changes, each with the district of its latest
    join."""
    intervals: list[Span] = []
    for change in changes:
        if change.active and (not intervals or intervals[-1][1] is not None):
            intervals.append((change.at, None, change.district))
        elif change.active:
            intervals[-1] = (intervals[-1][0], intervals[-1][1], change.district)
        elif intervals and intervals[-1][1] is None:
            intervals[-1] = (intervals[-1][0], change.at, intervals[-1][2])
    return intervals


def _current_interval(
    changes: list[Change],
) -> tuple[int | None, int | None, str | None]:
    """The latest membership interval [since, until) with the district of its latest join."""
    intervals = _intervals(changes)
    if not intervals:
        return None, None, None
    return intervals[-1]


def _district_at(changes: list[Change], instant: int) -> str | None:
    """The district of the latest join at or before ``instant`` (what was known by then)."""
    district = None
    for change in changes:
        if change.at > instant:
            break
        if change.active:
            district = change.district
    return district


def _lapse_cohort(ctx: Context, st: PersonState, person_id: str, name: str, due: int
                  ) -> int | None:
    cohort = split_name(name)[1]
    loops = st.loops
    member = None if loops is None or loops.cohorts is None else loops.cohorts.get(cohort)
    every = ctx.policy.cohorts.get(cohort)
    if member is None or member.since is None or every is None:
        return None  # (every None: the policy no longer defines this cohort)
    following: int | None = due
    while following is not None and following <= due:  # a later interval's first due passed
        following = _judge(ctx, st, person_id, cohort, member, every, following)
    return following


def _next_interval(member: Membership, since: int, every: int) -> int | None:
    """After the chain's interval ended, start the next one (a re-join that was applied
    before the clock fired the old interval's lapses); its first due instant, or None."""
    later = [iv for iv in _intervals(member.changes) if iv[0] > since]
    if not later:
        return None
    start, until, _ = later[0]
    _start(member, start, until)
    return start + every


def _judge(
    ctx: Context, st: PersonState, person_id: str, cohort: str, member: Membership,
    every: int, due: int,
) -> int | None:
    """The lapse at ``due`` of the member's current chain; the next due instant or None."""
    since, anchor, floor = member.since, member.anchor, member.floor
    assert since is not None and anchor is not None and floor is not None  # set together
    if member.until is not None and member.until <= due:
        return _next_interval(member, since, every)
    times = [s.at for s in st.samples or ()]
    sampled = latest_in(times, max(anchor, floor), due)
    if sampled is not None:
        member.anchor = sampled
        return sampled + every
    district = _district_at(member.changes, due) or member.district
    if raise_alert(
        ctx, st, kind="test_missed", subject=person_id, due=due, person_id=person_id,
        district=district,
        details={
            "requirement": f"cohort:{cohort}",
            "cohort": cohort,
            "test_every_hours": every / 3600,
            "last_sampled_at": ctx.cal.iso(anchor) if anchor != since else None,
        },
    ):
        ctx.out.contribute(district, due, "tests_missed")
    member.floor = due
    return due + every


HANDLERS: Final[dict[str, LapseHandler[PersonState]]] = {"cohort": _lapse_cohort}
