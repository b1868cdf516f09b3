"""A run of data-entry parts combined before they are applied, as a combiner does in Kafka
Streams: most records with a receipt send their source's key an :class:`Entered` and their
district's report an entry contribution, and applying each as a keyed step of its own cost
replay a third of its speed. Parts going to one key and counting in one day add up (counts
add; a day keeps its lags as a multiset, for the nearest-rank percentile), so they are
combined per (key, topic, cut-off) into one :class:`EnteredDay` and per (district, report
window) into one :class:`EntryLags`, and applied in one step each. An entry whose report
window the clock has passed already (entered after its day's cut-off) is not held: its
report is due at once (:attr:`EntryCombiner.overdue`).

Replay combines a run's records (:meth:`EntryCombiner.record`); the worker's data-entry
and report stages combine the parts of one pack, applied at one clock
(:meth:`EntryCombiner.entered`, :meth:`EntryCombiner.contributed`).

Combining is exact when the combined parts are applied before anything could see the
difference: before the data-entry or report stage fires (a day's cut-off, judged or
reported, a key forgotten), before the clock reaches the earliest cut-off held here
(:attr:`EntryCombiner.due`), and before any other input reaches the data-entry stage (an
action). Each part's cut-off is found when it is read, from the clock then and its source's
judged day (which only a fire of that stage changes), as :func:`on_entry` finds it.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from closedloop.agents.calendar import Calendar
from closedloop.agents.closure import EntryLags
from closedloop.agents.entry import entry_lag, subject_of
from closedloop.agents.sources import Entered, EnteredDay
from closedloop.agents.state import LabTold
from closedloop.schemas.policy import Policy

__all__ = ["NEVER", "EntryCombiner", "LabParts"]

NEVER: Final = 2**62
"""The due instant of a combiner holding nothing."""


class EntryCombiner:
    """Entered parts per (key, topic, cut-off) and entry lags per (district, report window),
    until :meth:`take`; ``judged(key)``: the latest day the source's key has judged, or
    None."""

    __slots__ = ("_cal", "_days", "_hi", "_judged", "_lo", "_reports", "_sources",
                 "_within", "due", "overdue")

    def __init__(self, policy: Policy, cal: Calendar,
                 judged: Callable[[str], int | None]) -> None:
        self._within = policy.entry_within
        self._cal = cal
        self._judged = judged
        self._days: dict[tuple[str, int], EnteredDay] = {}
        self._reports: dict[tuple[str, int], EntryLags] = {}
        # (topic, source) -> its key and the day it had judged: no fire comes before take()
        self._sources: dict[tuple[str, str], tuple[str, int | None]] = {}
        # the report window (lo, hi] last found: most parts of a run fall in one
        self._lo = self._hi = NEVER
        self.due = NEVER  # the earliest cut-off of a part held
        # entry lags of a report window the clock has passed, to apply at once, uncombined:
        # the report of their day is due now, or raised (they count in the next)
        self.overdue: list[tuple[str, EntryLags]] = []

    def _cutoff(self, instant: int) -> int:
        """The cut-off of the report window (previous cut-off, cut-off] holding ``instant``."""
        if self._lo < instant <= self._hi:
            return self._hi
        cal = self._cal
        day = cal.report_date(instant)
        self._lo, self._hi = cal.cutoff_at(day - timedelta(days=1)), cal.cutoff_at(day)
        if not self._lo < instant <= self._hi:  # a day the calendar shapes otherwise
            self._lo = self._hi = NEVER
            return cal.cutoff_at(day)
        return self._hi

    def record(self, topic: str, source: str | None, district: str | None, receipt: int,
               occurred: int, clock: int) -> bool:
        """A valid record of known entry lag read when the clock is at ``clock``: what
        ``sources.routes`` sends for it (its source's part, its district's entry
        contribution), combined; returns whether it was late."""
        lag = receipt - occurred if receipt > occurred else 0  # entry_lag
        within = self._within.get(topic)
        late = within is not None and lag > within  # is_late
        if source is not None:
            known = self._sources.get((topic, source))
            if known is None:
                key = subject_of(topic, source)
                known = self._sources[(topic, source)] = (key, self._judged(key))
            self._day(known[0], known[1], topic, receipt, lag, late, district, clock)
        if district is not None:
            self.contributed(district, occurred, lag, late, clock)
        return late

    def entered(self, key: str, item: Entered, clock: int) -> None:
        """An :class:`Entered` part for ``key`` applied when the stage's clock is at
        ``clock`` (the worker's data-entry stage, a pack of them at one clock)."""
        known = self._sources.get((item.topic, key))
        if known is None:
            known = self._sources[(item.topic, key)] = (key, self._judged(key))
        lag = entry_lag(item.receipt, item.occurred)
        within = self._within.get(item.topic)
        self._day(key, known[1], item.topic, item.receipt, lag,
                  within is not None and lag > within, item.district, clock)

    def _day(self, key: str, judged: int | None, topic: str, receipt: int, lag: int,
             late: bool, district: str | None, clock: int) -> None:
        # counting_cutoff: the first cut-off at or after the receipt that neither the clock
        # nor the source has passed
        passed = clock if judged is None or judged < clock else judged
        cutoff = self._cutoff(receipt if receipt > passed else passed + 1)
        day = self._days.get((key, cutoff))
        if day is None:
            self._days[(key, cutoff)] = day = EnteredDay(topic, cutoff, [], 0, {}, receipt,
                                                         clock, receipt)
            if cutoff < self.due:
                self.due = cutoff
        day.lags.append(lag)
        day.late += late
        if receipt > day.last:
            day.last = receipt
        if district is not None:
            day.districts[district] = day.districts.get(district, 0) + 1

    def contributed(self, district: str, at: int, lag: int, late: bool, clock: int) -> None:
        """An entry contribution of ``district`` at ``at`` (``entry_contribution``) applied
        when the report stage's clock is at ``clock``."""
        cutoff = self._cutoff(at)
        if cutoff <= clock:  # a day the clock has passed: its report is due at once
            self.overdue.append((district, EntryLags(at, [lag], int(late))))
            return
        lags = self._reports.get((district, cutoff))
        if lags is None:
            self._reports[(district, cutoff)] = lags = EntryLags(at, [], 0)
            if cutoff < self.due:
                self.due = cutoff
        lags.lags.append(lag)
        lags.late += late

    def __bool__(self) -> bool:
        return bool(self._days or self._reports)

    def take(self) -> tuple[list[tuple[str, EnteredDay]], list[tuple[str, EntryLags]]]:
        """What is held, to apply: combined parts by key, combined lags by district."""
        days = [(key, day) for (key, _), day in self._days.items()]
        reports = [(district, lags) for (district, _), lags in self._reports.items()]
        self._days, self._reports, self._sources = {}, {}, {}
        self.due = NEVER
        return days, reports


class LabParts:
    """What tubes tell their labs (:class:`~closedloop.agents.state.LabTold`), one part per
    lab until :meth:`take`: a lab's state adds up its parts in any order (agents/entry.py
    ``on_told``), so one step applies them all. ``due``: an instant no held part can begin
    a silence before: they must be applied before the clock reaches it, before the lab's own
    deadlines fire, and before an action reaches the lab. NEVER while nothing is held.

    A lab is silent at t only when its latest report at or before t is at least
    ``lab_silent_after`` before t. So a change of its count of waiting tubes at x (a wait
    begun, or one ended by its retention) can begin a silence only at x or later, and not
    before the latest report known at or before x plus ``lab_silent_after``: a lab reporting
    every few minutes holds its tubes' waits for hours, where the instant of each (at the
    clock when the tube stage tells it) made them all due at once. A held report R ends a
    silence the lab may believe goes on: a new one can begin at R + ``lab_silent_after``.
    ``reports_of(lab_id)``: the lab's report instants as its state holds them, sorted (the
    latest before what it judged and every later one), or None; without it a change is due
    at its own instant."""

    __slots__ = ("_held", "_quiet", "_reports_of", "due")

    def __init__(self, policy: Policy,
                 reports_of: Callable[[str], list[int] | None] | None = None) -> None:
        self._quiet = policy.lab_silent_after
        self._reports_of = reports_of
        self._held: dict[str, LabTold] = {}
        self.due = NEVER

    def merge(self, lab_id: str, part: LabTold) -> None:
        """Hold ``part`` (made for this holder: its lists may be extended) without finding
        when it is due: for a holder applied at once (the worker's, one a pack)."""
        held = self._held.get(lab_id)
        if held is None:
            self._held[lab_id] = part
        else:
            held.starts.extend(part.starts)
            held.stops.extend(part.stops)
            held.reports.extend(part.reports)

    def add(self, lab_id: str, part: LabTold) -> None:
        """Hold ``part`` (made for this holder: its lists may be extended)."""
        held = self._held.get(lab_id)
        if held is None:
            self._held[lab_id] = held = part
            held.reports.sort()
        else:
            held.starts.extend(part.starts)
            held.stops.extend(part.stops)
            for report in part.reports:  # kept sorted: mostly in order, so appended
                if held.reports and report < held.reports[-1]:
                    insort(held.reports, report)
                else:
                    held.reports.append(report)
        due, quiet = self.due, self._quiet
        if part.reports:
            reported = min(part.reports) + quiet
            if reported < due:
                due = reported
        if part.starts or part.stops:  # (most parts are a report alone)
            for instant in (*part.starts, *part.stops):
                if instant < due:  # its bound is at least the instant itself
                    latest = self._latest_report(lab_id, held.reports, instant)
                    bound = instant if latest is None else max(instant, latest + quiet)
                    if bound < due:
                        due = bound
        self.due = due

    def _latest_report(self, lab_id: str, held: list[int], instant: int) -> int | None:
        """A report at or before ``instant``, the latest held for the lab if there is one
        (held reports are the lab's newest), else the latest its state knows; None when
        neither has one. Any earlier report than the latest only makes the bound earlier,
        as a later one read meanwhile delays a silence: the bound stays below it."""
        at = bisect_right(held, instant)
        if at:
            return held[at - 1]
        known = None if self._reports_of is None else self._reports_of(lab_id)
        if known:
            at = bisect_right(known, instant)
            if at:
                return known[at - 1]
        return None

    def __bool__(self) -> bool:
        return bool(self._held)

    def __contains__(self, lab_id: object) -> bool:
        return lab_id in self._held

    def pop(self, lab_id: str) -> LabTold | None:
        """One lab's held part (the others stay held; ``due`` may stay early)."""
        return self._held.pop(lab_id, None)

    def take(self) -> list[tuple[str, LabTold]]:
        held, self._held = list(self._held.items()), {}
        self.due = NEVER
        return held
