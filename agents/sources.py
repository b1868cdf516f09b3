"""The data-entry stage's keys (CONTRACT.md v1.2 §4 "Data entry"): a source's days, a lab's
silences, and the alerts they raise with their escalations.

Records reach the stage as two small internal records, so that each source's day and each
lab's silence is judged in one place whatever key its inputs arrive under (a lab's records
are keyed by tube, a site's by tube, a worker's by person):

- :class:`Entered`, keyed ``<topic>:<source>`` (the ``late_entries`` alert's subject, so an
  operator's action on it reaches this key): a record of known entry lag with a source;
- :class:`~closedloop.agents.state.LabTold`, keyed by lab_id (the ``lab_silent`` alert's
  subject): what the tube stage tells a lab of its tubes (agents/lab_waits.py): how its count
  of waiting tubes changes, and its reports, whatever their receipt (a silence is judged in
  event time only).

Both live in one :class:`~closedloop.agents.entry.EntryState`: a lab_id that happens to
read like ``<topic>:<source>`` shares the key, and each part keeps its own facts.
Requirements: ``day`` (the earliest open cut-off), ``silent`` (the next silence's first
instant as the facts stand), ``esc:<alert id>`` and ``gc``, as every key has.
"""

from __future__ import annotations

from typing import Final

import msgspec

from closedloop.agents import escalation
from closedloop.agents.closure import entry_contribution
from closedloop.agents.entry import (
    EntryState,
    LabState,
    SourceState,
    entry_lag,
    fire_silence,
    judge_day,
    on_entries,
    on_entry,
    on_told,
    rejected_district,
    rejected_instant,
    source_of,
    subject_of,
)
from closedloop.agents.raised import Raised
from closedloop.agents.requirements import (
    Context,
    LapseHandler,
    close_req,
    fire_due,
    keep_alive,
    lapse_gc,
    open_req,
    open_req_by,
    raise_alert,
)
from closedloop.agents.state import Contribution, LabTold
from closedloop.schemas.events import MODELS, Action, Event
from closedloop.schemas.plausible import OTHER_TIMES
from closedloop.schemas.policy import Policy

__all__ = ["HANDLERS", "Entered", "EnteredDay", "on_action", "on_entered",
           "on_entered_day", "on_lab_told", "rejected_part", "routes"]


class Entered(msgspec.Struct, tag="entered", tag_field="type", gc=False):
    """Input -> data-entry stage: a record of ``topic`` with a source, of known entry lag."""

    topic: str
    receipt: int  # its own receipt, epoch seconds
    occurred: int
    district: str | None


class EnteredDay(msgspec.Struct, gc=False):
    """:class:`Entered` parts of one ``<topic>:<source>`` counting in one day, combined
    (agents/combine.py): the day's cut-off, found as each part's would have been, their
    lags, how many were late, their districts; the first part's receipt and the clock it was
    read at, and the latest receipt (a key's activity, as each part notes it)."""

    topic: str
    cutoff: int
    lags: list[int]
    late: int
    districts: dict[str, int]
    first: int
    first_clock: int
    last: int


def routes(policy: Policy, topic: str, event: Event, occurred: int, receipt: int | None
           ) -> tuple[list[tuple[str, Entered]], Contribution | None]:
    """What a valid input record of ``topic`` sends on, read where it is decoded: to the
    data-entry stage, keyed by its source's day when its lag is known (a lab's silence is
    told by the tube stage, agents/lab_waits.py), and to its district's daily report (when
    its lag is known and it names a district). ``receipt``: its own receipt (epoch
    seconds), None when unknown."""
    sent: list[tuple[str, Entered]] = []
    district: str | None = getattr(event, "district", None)
    contribution = None
    if receipt is not None:
        source = source_of(event)
        if source is not None:
            sent.append((subject_of(topic, source), Entered(topic, receipt, occurred,
                                                            district)))
        if district is not None:
            contribution = entry_contribution(policy, district, topic, occurred,
                                              entry_lag(receipt, occurred))
    return sent, contribution


def rejected_part(policy: Policy, topic: str | None, value: object, bound: float | None
                  ) -> tuple[str, int | None] | None:
    """Where a rejected input of ``topic`` (None: unknown) counts in ``entries_rejected``:
    ``value`` is the rejected event as parsed JSON (None when it was not even JSON),
    ``bound`` the run's receipt that bounds an event's times. Its district and the instant
    it counts at (its own occurred_at, else another time it names, see
    :func:`~closedloop.agents.entry.rejected_instant`), None for the instant when the value
    says none (it then counts one second after the clock it is read at, held until that
    clock has started); nothing when it names no valid district."""
    district = rejected_district(value)
    if district is None:
        return None
    model = MODELS.get(topic) if topic is not None else None
    others = () if model is None else OTHER_TIMES[model]
    return district, rejected_instant(value, policy.zone, bound, policy.max_clock_skew,
                                      others)


def on_entered(ctx: Context, st: EntryState, key: str, item: Entered) -> None:
    """Count the record in its source's day (the first cut-off at or after its receipt the
    clock has not reached); that cut-off is the key's ``day`` deadline at the latest."""
    days = st.days
    if days is None:
        st.days = days = SourceState()
    due = on_entry(ctx.policy, ctx.cal, days, item.topic, item.receipt, item.occurred,
                   item.district, ctx.clock)
    open_req_by(st, "day", due)
    keep_alive(ctx, st, item.receipt)


def on_entered_day(ctx: Context, st: EntryState, key: str, item: EnteredDay) -> None:
    """Parts counting in one day at once: what :func:`on_entered` does to each, in one step."""
    days = st.days
    if days is None:
        st.days = days = SourceState()
    open_req_by(st, "day", on_entries(days, item.cutoff, item.lags, item.late,
                                      item.districts))
    keep_alive(ctx, st, item.first, clock=item.first_clock)
    keep_alive(ctx, st, item.last)


def on_lab_told(ctx: Context, st: EntryState, key: str, item: LabTold) -> None:
    """What a lab's tubes told it: the lab's next silence as the facts now stand is its
    ``silent`` deadline (a report may move it later, a wait told late earlier)."""
    lab = st.lab
    if lab is None:
        st.lab = lab = LabState()
    _arm_silence(st, on_told(ctx.policy, lab, item.starts, item.stops, item.reports,
                             ctx.clock))
    keep_alive(ctx, st, max((*item.starts, *item.stops, *item.reports), default=ctx.clock))


def on_action(ctx: Context, st: EntryState, key: str, event: Action) -> None:
    """An operator's action on one of this key's alerts. What the clock already reached
    fires first, so an alert due by now is raised before the action that handles it."""
    fire_due(ctx, st, key, HANDLERS)
    escalation.on_action(ctx, st, event)


def _arm_silence(st: EntryState, start: int | None) -> None:
    if start is None:
        close_req(st, "silent")
    else:
        open_req(st, "silent", start)


def _raise(ctx: Context, st: EntryState, raised: Raised) -> None:
    raise_alert(ctx, st, kind=raised.kind, subject=raised.subject, due=raised.due,
                raised=raised.raised, district=raised.district, details=raised.details)


def _lapse_day(ctx: Context, st: EntryState, key: str, name: str, due: int) -> int | None:
    """The cut-off ``due``: judge the source's day; the next open day is due next."""
    days = st.days
    if days is None:
        return None
    topic, _, source = key.partition(":")
    raised, following = judge_day(ctx.policy, days, topic, source, due)
    if raised is not None:
        _raise(ctx, st, raised)
    if not days.days:
        st.days = None  # every cut-off it judged is behind the clock: nothing to remember
    return following


def _lapse_silent(ctx: Context, st: EntryState, key: str, name: str, due: int
                  ) -> int | None:
    """The clock reached the first instant of a silence as the facts stood: raise every
    silence beginning by the clock on the facts now known."""
    lab = st.lab
    if lab is None:
        return None
    raised, following = fire_silence(ctx.policy, ctx.cal, lab, key, ctx.clock)
    for alert in raised:
        _raise(ctx, st, alert)
    return following


HANDLERS: Final[dict[str, LapseHandler[EntryState]]] = {
    "day": _lapse_day,
    "silent": _lapse_silent,
    "esc": escalation.lapse_escalation,
    "gc": lapse_gc,
}
