"""Data entry on time, complete and accurate (CONTRACT.md v1.2 §4 "Data entry"; 录入及时).

Pure rules over small typed states, with no runtime in them: instants are epoch seconds,
what a rule raises is a :class:`~closedloop.agents.raised.Raised`, and every function that
schedules returns the state's next deadline. A stage keyed by source (``<topic>:<source>``)
holds a :class:`SourceState`; one keyed by lab holds a :class:`LabState`.

- A record's **entry lag** is its own receipt − its occurred_at, floored at 0, and is known
  only when the record carries its receipt (§1). It is **late** when longer than the topic's
  ``entry_within`` (a lag of exactly ``entry_within`` is on time).
- **late_entries**: a record of known lag counts in the first daily cut-off at or after its
  receipt that the clock has not passed when the record is read, nor the source judged
  (:func:`counting_cutoff`). At each cut-off a source
  with at least ``late_entries_min`` records that day, of which late / entries ≥
  ``late_share`` (exactly, as fractions), raises one alert.
- **lab_silent**: a lab is silent at t when a tube it received at or before t −
  ``lab_silent_after`` has no report at t, and it reported nothing in (t −
  ``lab_silent_after``, t]; event time throughout. One alert at the first instant of each
  silence; the silence ends at the lab's next report.
- The daily report's data-entry columns (:class:`EntryTally`), and the district a rejected
  value counts in (:func:`rejected_district`).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import datetime, tzinfo
from fractions import Fraction
from typing import Any, Final

import msgspec

from closedloop.agents.calendar import Calendar
from closedloop.agents.raised import Raised, half_up
from closedloop.agents.state import Keyed
from closedloop.schemas.events import (
    Checkpoint,
    Clinic,
    Event,
    Followup,
    Lab,
    Sampling,
)
from closedloop.schemas.identifiers import contains_raw
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.plausible import EARLIEST
from closedloop.schemas.policy import Policy
from closedloop.schemas.text import text_problem

__all__ = [
    "EntryState",
    "EntryTally",
    "LabState",
    "SourceDay",
    "SourceState",
    "counting_cutoff",
    "entry_lag",
    "fire_silence",
    "is_late",
    "judge_day",
    "nearest_rank_p90",
    "on_entries",
    "on_entry",
    "on_told",
    "rejected_district",
    "rejected_instant",
    "reported_again",
    "silence_start",
    "source_of",
    "subject_of",
]

LATE_ENTRIES: Final = "late_entries"
LAB_SILENT: Final = "lab_silent"
_SOURCE_FIELD: Final[dict[type, str]] = {
    Sampling: "site_id", Lab: "lab_id", Checkpoint: "checkpoint_id", Clinic: "facility_id",
    Followup: "worker_id",
}
_NAME_LENGTH: Final = 200  # a district is a Name of the contract's models (1-200 characters)


# -- a record's source, lag and lateness --------------------------------------------------------


def source_of(event: Event) -> str | None:
    """The record's source (§4): a sampling's site, a lab record's lab, a checkpoint's or a
    clinic's facility, a follow-up's worker when given; None for every other record."""
    field = _SOURCE_FIELD.get(type(event))
    return None if field is None else getattr(event, field)


def subject_of(topic: str, source: str) -> str:
    """The alert's subject and the source stage's key: ``sampling:site-17``."""
    return f"{topic}:{source}"


def entry_lag(receipt: int, occurred: int) -> int:
    """Receipt − occurred_at, floored at 0 (a record entered before its event is on time)."""
    return max(0, receipt - occurred)


def is_late(policy: Policy, topic: str, lag: int) -> bool:
    """Longer than the topic's ``entry_within``: exactly ``entry_within`` is on time. A
    topic without one (``action``) is never late."""
    within = policy.entry_within.get(topic)
    return within is not None and lag > within


def counting_cutoff(cal: Calendar, receipt: int, judged: int | None, clock: int | None
                    ) -> int:
    """The daily cut-off a record received at ``receipt`` counts in: the first at or after
    its receipt that the clock has not passed when it is read (``clock``: the engine clock
    then, or None before it has one; a cut-off equal to the clock has fired, as every
    deadline does at its instant) and that the source has not judged (``judged``: its latest
    judged cut-off, or None). Both matter: a source's first record may be read long after
    cut-offs it never had to judge, and a judged day stays judged whatever the clock says."""
    passed = judged if clock is None else clock if judged is None else max(judged, clock)
    if passed is not None and receipt <= passed:
        receipt = passed + 1  # the first cut-off after the passed one, however far the clock
    return cal.cutoff_at(cal.report_date(receipt))


# -- late_entries, per (topic, source) -----------------------------------------------------


class SourceDay(msgspec.Struct, kw_only=True):
    """One source's records counted in one day: their lags, how many late, their districts."""

    lags: list[int] = msgspec.field(default_factory=list)
    late: int = 0
    districts: dict[str, int] = msgspec.field(default_factory=dict)


class SourceState(msgspec.Struct, kw_only=True):
    """A source's open days by cut-off, and the latest cut-off judged."""

    days: dict[int, SourceDay] = msgspec.field(default_factory=dict)
    judged: int | None = None


def on_entry(policy: Policy, cal: Calendar, st: SourceState, topic: str, receipt: int,
             occurred: int, district: str | None, clock: int | None) -> int:
    """Count a record of known lag read when the engine clock is at ``clock``; returns the
    state's next deadline (a cut-off)."""
    cutoff = counting_cutoff(cal, receipt, st.judged, clock)
    day = st.days.get(cutoff)
    if day is None:
        st.days[cutoff] = day = SourceDay()
    lag = entry_lag(receipt, occurred)
    day.lags.append(lag)
    day.late += is_late(policy, topic, lag)
    if district is not None:
        day.districts[district] = day.districts.get(district, 0) + 1
    return min(st.days)


def on_entries(st: SourceState, cutoff: int, lags: list[int], late: int,
               districts: Mapping[str, int]) -> int:
    """Count records of one day at once, their cut-off found as :func:`on_entry` finds it
    (the same as counting them one by one: a day holds counts and a multiset of lags);
    returns the state's next deadline."""
    day = st.days.get(cutoff)
    if day is None:
        st.days[cutoff] = day = SourceDay()
    day.lags.extend(lags)
    day.late += late
    for district, count in districts.items():
        day.districts[district] = day.districts.get(district, 0) + count
    return min(st.days)


def judge_day(policy: Policy, st: SourceState, topic: str, source: str, cutoff: int
              ) -> tuple[Raised | None, int | None]:
    """At ``cutoff``: the day's ``late_entries`` alert, if the source earns one, and the
    state's next deadline. The day is forgotten once judged."""
    day = st.days.pop(cutoff, None)
    st.judged = cutoff if st.judged is None else max(st.judged, cutoff)
    raised = None if day is None else _late_entries(policy, day, topic, source, cutoff)
    return raised, (min(st.days) if st.days else None)


def _late_entries(policy: Policy, day: SourceDay, topic: str, source: str, cutoff: int
                  ) -> Raised | None:
    entries = len(day.lags)
    if entries < policy.late_entries_min or Fraction(day.late, entries) < policy.late_share:
        return None
    return Raised(
        kind=LATE_ENTRIES, subject=subject_of(topic, source), due=cutoff,
        district=_most_named(day.districts),
        details={
            "topic": topic, "source": source, "entries": entries, "late": day.late,
            "late_share": half_up(Fraction(day.late, entries), 2),
            "lag_p90_minutes": half_up(Fraction(nearest_rank_p90(day.lags), 60), 1),
            "worst_lag_minutes": half_up(Fraction(max(day.lags), 60), 1),
        },
    )


def _most_named(districts: Mapping[str, int]) -> str | None:
    """The district most records name; ties: the smallest; None when none names one."""
    if not districts:
        return None
    return min(districts, key=lambda district: (-districts[district], district))


def nearest_rank_p90(values: list[int]) -> int:
    """The nearest-rank 90th percentile: the ⌈0.9 n⌉-th smallest of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[(9 * len(ordered) + 9) // 10 - 1]


# -- lab_silent, per lab ------------------------------------------------------------------------


class LabState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a lab's silence is judged on, in a size that does not grow with its tubes in
    flight (its tubes tell it only how many wait, agents/lab_waits.py): how many tubes wait
    at ``examined`` - 1 and the changes of that count after it (instant -> change); its
    report instants, sorted (the latest before ``examined`` and every later one); how far
    silences have been judged (every silence beginning before ``examined`` was raised or
    found not to be one); and, for each silence raised, its end (the lab's first report
    after it, None while it lasts), which the alert's escalation asks after."""

    waiting: int = 0
    changes: dict[int, int] = msgspec.field(default_factory=dict)
    reports: list[int] = msgspec.field(default_factory=list)
    examined: int | None = None
    ended: dict[int, int | None] = msgspec.field(default_factory=dict)  # start -> end


def on_told(policy: Policy, st: LabState, starts: list[int], stops: list[int],
            reports: list[int], clock: int | None = None) -> int | None:
    """What the lab's tubes told it (agents/lab_waits.py): +1 waiting at each of
    ``starts``, -1 at each of ``stops``, and reports at ``reports``; returns the state's next
    deadline: the first instant of the next silence, as the facts stand. ``clock``: the
    stage's clock when it is read; when no silence begins by it, what it has judged is
    forgotten, so that a busy lab that is never silent keeps only what lies ahead."""
    examined = st.examined
    changes = st.changes
    for instants, step in ((starts, 1), (stops, -1)):
        for instant in instants:
            if examined is not None and instant < examined:
                st.waiting += step  # before what is judged: it counts from there on
            else:
                left = changes.get(instant, 0) + step
                if left:
                    changes[instant] = left
                else:
                    del changes[instant]
    for at in reports:
        _reported(st, at)
    following = silence_start(policy, st)
    if clock is not None and (following is None or following > clock):
        _judged(st, clock)
    return following


def _reported(st: LabState, at: int) -> None:
    for start, end in st.ended.items():
        if at > start and (end is None or at < end):
            st.ended[start] = at
    reports, examined = st.reports, st.examined
    if examined is not None and at < examined:
        # what is judged needs only its latest report
        if reports and reports[0] < examined:
            if at > reports[0]:
                reports[0] = at
        else:
            reports.insert(0, at)
    elif not reports or at > reports[-1]:
        reports.append(at)
    else:
        place = bisect.bisect_left(reports, at)
        if reports[place] != at:
            reports.insert(place, at)


def reported_again(st: LabState, due: int, until: int) -> bool:
    """Did the silence raised at ``due`` end by ``until`` (event time): did the lab report
    anything after ``due`` and at or before ``until``? What stops a ``lab_silent``
    escalation without an operator."""
    end = st.ended.get(due)
    return end is not None and end <= until


def silence_start(policy: Policy, st: LabState) -> int | None:
    """The first instant, at or after ``st.examined``, of a silence of the lab, or None.

    The lab is silent at t when a tube waits at t and its latest report at or before t (if
    any) is at least ``lab_silent_after`` before t; a silence begins at t when the lab is
    silent at t and was not at t - 1. Between two consecutive reports R and R' it can be
    silent only in [R + ``lab_silent_after``, R'): there it is silent wherever a tube waits,
    so a silence begins at that gap's first instant if a tube waits then, or where the count
    of waiting tubes rises from none. Gaps no longer than ``lab_silent_after`` hold none.
    """
    changes = st.changes
    waiting = st.waiting  # the count at examined - 1, then as the walk goes
    if not changes and waiting <= 0:
        return None  # no tube waits, nor will on the facts known
    quiet = policy.lab_silent_after
    reports = st.reports
    since = st.examined
    ordered = sorted(changes.items()) if changes else []
    count, last = len(ordered), len(reports) - 1
    at = 0  # ordered[:at] are counted in ``waiting``
    gap = -1 if since is None else bisect.bisect_right(reports, since - 1) - 1
    while gap <= last:
        begins = reports[gap] if gap >= 0 else None  # None: before the first report
        ends = reports[gap + 1] if gap < last else None  # None: the open gap
        gap += 1
        lo = None if begins is None else begins + quiet
        if ends is not None and lo is not None and lo >= ends:
            continue  # a short gap holds no silence (its changes are counted later)
        fresh = True  # whether a silence may begin at lo whatever the count before it
        if since is not None and (lo is None or lo < since):
            lo, fresh = since, False  # silent at since - 1 too if a tube waited then
        if lo is not None:
            before = waiting
            while at < count and ordered[at][0] < lo:
                before += ordered[at][1]
                at += 1
            waiting = before
            while at < count and ordered[at][0] == lo:
                waiting += ordered[at][1]
                at += 1
            if waiting > 0 and (fresh or before <= 0) and (ends is None or lo < ends):
                return lo
        while at < count and (ends is None or ordered[at][0] < ends):
            instant, change = ordered[at]
            at += 1
            if waiting <= 0 < waiting + change:
                return instant
            waiting += change
    return None


def fire_silence(policy: Policy, cal: Calendar, st: LabState, lab_id: str, clock: int
                 ) -> tuple[list[Raised], int | None]:
    """When the clock (the watermark: no fact before it is still to come) reached the
    state's deadline: a ``lab_silent`` alert for each silence that begins by ``clock`` on the
    facts now known (a report that arrived meanwhile may have ended it first), and the next
    deadline. What no later silence can need is forgotten."""
    raised = []
    start = silence_start(policy, st)
    while start is not None and start <= clock:
        raised.append(_lab_silent(policy, cal, st, lab_id, start))
        after = bisect.bisect_right(st.reports, start)
        st.ended[start] = st.reports[after] if after < len(st.reports) else None
        _judged(st, start)
        start = silence_start(policy, st)
    _judged(st, clock)
    oldest = clock - policy.state_retention
    for begun in [begun for begun in st.ended if begun < oldest]:
        del st.ended[begun]  # its escalation is over long before (two escalate_after)
    return raised, start


def _lab_silent(policy: Policy, cal: Calendar, st: LabState, lab_id: str, start: int
                ) -> Raised:
    pending = st.waiting + sum(change for instant, change in st.changes.items()
                               if instant <= start)
    before = bisect.bisect_left(st.reports, start)
    last = cal.iso(st.reports[before - 1]) if before else None
    return Raised(kind=LAB_SILENT, subject=lab_id, due=start, district=None,
                  details={"pending_tubes": pending, "last_reported_at": last})


def _judged(st: LabState, through: int) -> None:
    """No silence begins after the ones raised up to ``through`` (inclusive) on the facts
    known: fold the count's changes by then into it, and keep the reports from the latest
    at or before it on."""
    if st.examined is not None and through < st.examined:
        return
    st.examined = through + 1
    changes = st.changes
    folded = [instant for instant in changes if instant <= through]
    for instant in folded:
        st.waiting += changes.pop(instant)
    at = bisect.bisect_right(st.reports, through)
    if at > 1:
        del st.reports[: at - 1]


class EntryState(Keyed, kw_only=True, omit_defaults=True, gc=False):
    """What the data-entry stage keeps under one key: a source's open days (key
    ``<topic>:<source>``, :func:`subject_of`) or a lab's silences (key: the lab_id), with
    the deadlines, alerts and escalations every key holds."""

    days: SourceState | None = None
    lab: LabState | None = None


# -- the daily report's data-entry columns ------------------------------------------------------


class EntryTally(msgspec.Struct, kw_only=True):
    """One district's records of known lag in one day's window, and its rejected input."""

    lags: list[int] = msgspec.field(default_factory=list)
    late: int = 0
    rejected: int = 0

    def add(self, policy: Policy, topic: str, lag: int) -> None:
        self.lags.append(lag)
        self.late += is_late(policy, topic, lag)

    def columns(self) -> dict[str, Any]:
        """entries, entries_late, entry_lag_p90_minutes (null without lags), entries_rejected."""
        return {
            "entries": len(self.lags), "entries_late": self.late,
            "entry_lag_p90_minutes": (half_up(Fraction(nearest_rank_p90(self.lags), 60), 1)
                                      if self.lags else None),
            "entries_rejected": self.rejected,
        }


def rejected_district(value: object) -> str | None:
    """The district a rejected input counts in: a JSON object's ``district`` when it is a
    string that would itself be valid (a name: 1-200 printable characters, no white space
    at either end, no raw identifier in it), else None (§4 "Accuracy")."""
    if not isinstance(value, dict):
        return None
    district = value.get("district")
    if not isinstance(district, str) or len(district) > _NAME_LENGTH:
        return None
    # a district holding a raw identifier is no valid district, and must never become the
    # key and name of a report (§2)
    return district if text_problem(district) is None and not contains_raw(district) else None



_EARLIEST: Final = int(EARLIEST.timestamp())


def rejected_instant(value: object, zone: tzinfo, bound: float | None, skew: int,
                     others: tuple[str, ...] = ()) -> int | None:
    """The instant a rejected value counts at, when the value itself says one: its
    ``occurred_at``, else the first of ``others`` (the topic's other times: a travel's
    ``arrived_at``) that names one: a string naming an instant as RFC 3339 writes it (one
    without an offset read in the policy's ``zone``, as the city's clerks write their local
    time), at or after 2000-01-01 and at most ``skew`` after ``bound`` (the run's receipt
    that bounds an event's times, §1; None: no upper bound). None when it says none: the
    value then counts as read. A function of the value alone, so that every partitioning of
    the inputs counts it in the same report."""
    if not isinstance(value, dict):
        return None
    for field in ("occurred_at", *others):
        instant = _plausible(value.get(field), zone, bound, skew)
        if instant is not None:
            return instant
    return None


def _plausible(text: object, zone: tzinfo, bound: float | None, skew: int) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    instant = epoch_seconds(parsed)
    if instant < _EARLIEST or (bound is not None and instant > bound + skew):
        return None
    return instant
