"""Testing rounds and the roster comparison (区域核酸; 大数据比对, 查漏补测), CONTRACT.md §4.

A round (``agents/shared.py``: every person partition holds every round) has three kinds of
deadlines: a ``progress`` report every ``round_progress_every`` after opens_at while it is
open, the ``close`` at closes_at (its report, and ``round_missed`` for every person in scope
not sampled in the round), and the ``final`` report at closes_at + ``catchup_within``. They
fire when the engine clock passes them, like every requirement, so records up to the allowed
lateness late still count; a round that arrives after its deadlines raises them at once.

How counts are kept: a report *as of* an instant T takes the roster, cohort memberships and
samplings as of T from the person states (each kept sorted by event time, so a record
arriving out of order counts where it belongs). What one person adds to a round's counts as
of T is :func:`_contrib`. Progress reports are not rescans: when a round arrives (or is
replaced) one pass over the partition's persons fills ``RoundRun.pending`` for each of its
progress instants still to come; from then on every change of a person's facts that can
matter (a sampling, a roster or cohort record, ``gc``) goes through :func:`tracking`, which
moves that person's contribution from before the change to after it. A progress report pops
its instant. So a record arriving late (within the lateness, or later: then it counts for the
instants still pending) lands exactly where a rescan would put it; the tests check both ways
give the same bytes (``INCREMENTAL = False`` rescans).

A person's contribution only changes at the instants of their facts, so it is a step
function of T, and ``pending`` holds steps: the earliest pending instant's counts whole, each
later one's as the change since the instant before it, and only the instants where something
changed (:func:`_pop_progress` makes the next one whole when a report takes the earliest).
A change of a person's facts then costs one contribution per step of the person before and
after it (:func:`_profile`; one or two for most persons), not one per pending instant: a
sampling in a 12-hour round with hourly reports adds to a single instant's counts. So neither
the memory of a round nor the cost of a report grows with its number of progress instants
(a round of 732 days with a report a minute has a million): the instants still to come are
a range (:func:`_pending_instants`), never a list. The close is one pass over the persons
(it needs the missed persons for the alerts, with their grid); it keeps its counts per
district and the missed persons, and the final report looks only at those.

Where the contract is silent (also in docs/RULES.md):
- progress instants are opens_at + k x every for k >= 1, strictly before closes_at (the close
  report stands for closes_at itself);
- a person not on the roster who was sampled at several sites of the round's districts is
  counted once, in the district of their earliest such sampling;
- a cohort round counts not-on-roster exactly as a roster round does (the roster is what is
  being checked, whoever the round is for);
- the close's in_scope, sampled and not_on_roster are kept for the final report: a sampling
  in the round that arrives after the close (later than the allowed lateness) changes none;
- one ``round_missed`` per person and closing instant: its district and grid are those of the
  first of its rounds (by round_id); a round arriving after another closing at the same
  instant already raised the person's alert adds nothing to it (an alert is never raised twice
  for one (kind, subject, due_at));
- ``round_missed`` escalates like any alert (agents/escalation.py); a catch-up sampling after
  the close satisfies it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from fractions import Fraction
from itertools import chain
from math import floor
from typing import Final

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, raise_alert
from closedloop.agents.shared import RoundDef, RoundRun, Shared, apply_round
from closedloop.agents.state import PersonState, RosterEntry, RoundPart, Sample, Sampled
from closedloop.schemas.events import Cohort, Population, Round
from closedloop.schemas.outputs import RoundReport, RoundRow
from closedloop.schemas.policy import Policy

__all__ = ["FACTS", "INCREMENTAL", "entry_at", "fire_rounds", "median_hours", "next_due",
           "on_round", "prime", "report", "tracking"]

STAGES: Final = ("progress", "close", "final")  # the order of one round's reports at one as_of

Counts = dict[str, list[int]]
"""district -> [in_scope, sampled, not_on_roster]"""
Missed = dict[str, tuple[str, str | None]]
"""person_id -> (district, grid) of a person in scope not sampled"""
Contrib = tuple[str | None, bool, str | None]
"""What one person adds to a round's counts as of an instant: (district where in scope or
None, sampled in the round, district of the site where counted not on the roster or None)"""

FACTS: Final = (Sampled, Population, Cohort)  # what can change a person's contribution

INCREMENTAL = True  # progress from the counts kept per instant; False: rescan (the tests' oracle)
_NOTHING: Final[Contrib] = (None, False, None)


def entry_at(st: PersonState, instant: int) -> RosterEntry | None:
    """The person's roster entry at ``instant`` (``left`` included), or None."""
    found = None
    for entry in st.roster or ():
        if entry.at > instant:
            break
        found = entry
    return found


def on_round(policy: Policy, shared: Shared, event: Round,
             persons: Mapping[str, PersonState]) -> bool:
    """Take a round record (or a replacement); prime its progress counts with one pass over
    the persons. False if the record is ignored."""
    if not apply_round(shared, event):
        return False
    _prime(policy, [shared.rounds[event.round_id]], persons)
    return True


def prime(policy: Policy, shared: Shared, persons: Mapping[str, PersonState]) -> None:
    """Recount every open round's pending progress counts from the persons (the worker, after
    a partition's recovery: the counts follow from the persons' facts, so a saved copy that
    missed the latest changes is rebuilt, not trusted)."""
    _prime(policy, [run for run in shared.rounds.values() if not run.closed], persons)


def _prime(policy: Policy, runs: list[RoundRun], persons: Mapping[str, PersonState]) -> None:
    todo: list[tuple[RoundDef, dict[int, Counts], range]] = []
    for run in runs:
        instants = _pending_instants(policy, run)
        if not INCREMENTAL or not instants:
            run.pending = None
            continue
        pending: dict[int, Counts] = {}
        run.pending = pending
        todo.append((run.defn, pending, instants))
    if not todo:
        return
    for st in persons.values():
        if st.roster is None and st.samples is None and _no_cohorts(st):
            continue
        for defn, pending, instants in todo:
            _move(pending, instants, {0: _NOTHING}, _profile(st, defn, instants))


def tracking(ctx: Context, st: PersonState, key: str) -> AbstractContextManager[None]:
    """Used as a statement, ``with tracking(ctx, st, key): ...``, around a change of person
    ``key``'s facts: moves the person's contribution to every open round's pending progress
    counts from before the change to after it (a person the change forgets, in
    ``ctx.out.gone``, contributes nothing after). Without a round it does nothing, and builds
    nothing: every sampling forward goes through it."""
    if not ctx.shared.rounds:
        return _UNTRACKED
    return _Tracking(ctx, st, key)


_UNTRACKED: Final = nullcontext()


class _Tracking:
    """:func:`tracking` when there are rounds."""

    __slots__ = ("before", "ctx", "key", "st")

    def __init__(self, ctx: Context, st: PersonState, key: str) -> None:
        self.ctx, self.st, self.key = ctx, st, key
        self.before: list[tuple[dict[int, Counts], RoundDef, range, Profile]] = []

    def __enter__(self) -> None:
        st, policy = self.st, self.ctx.policy
        for run in self.ctx.shared.rounds.values():
            pending = run.pending
            if pending is not None:
                instants = _pending_instants(policy, run)
                if instants:
                    self.before.append((pending, run.defn, instants,
                                        _profile(st, run.defn, instants)))

    def __exit__(self, *exc: object) -> None:
        st, gone = self.st, self.key in self.ctx.out.gone
        for pending, defn, instants, before in self.before:
            after = {0: _NOTHING} if gone else _profile(st, defn, instants)
            if after != before:
                _move(pending, instants, before, after)


Profile = dict[int, Contrib]
"""A person's contribution at sorted instants, as its steps: index -> the contribution from
that instant on (until the next index); index 0 always present."""


def _no_cohorts(st: PersonState) -> bool:
    return st.loops is None or st.loops.cohorts is None


def _profile(st: PersonState, defn: RoundDef, instants: range) -> Profile:
    """The person's contribution at each of ``instants`` (sorted), computed only at the first
    instant and at the first instant at or after each of the person's facts: in between no
    fact is added to what the contribution looks at, so it cannot change."""
    first, last = instants[0], instants[-1]
    points: set[int] | None = None  # indexes past the first; most persons have none
    loops = st.loops
    cohorts = None if loops is None else loops.cohorts
    changes = [member.changes for member in cohorts.values()] if cohorts else []
    for facts in (st.roster, st.samples, *changes):
        for fact in facts or ():
            at = fact.at
            if at > first:
                if at > last:
                    break  # sorted by time: the rest are after every instant too
                if points is None:
                    points = set()
                points.add(bisect_left(instants, at))
    profile: Profile = {0: _contrib(st, defn, first)}
    if points is not None:
        previous = profile[0]
        for index in sorted(points):
            contrib = _contrib(st, defn, instants[index])
            if contrib != previous:
                profile[index] = previous = contrib
    return profile


def _move(pending: dict[int, Counts], instants: range, before: Profile, after: Profile
          ) -> None:
    """Replace a person's contribution ``before`` by ``after`` in the pending counts, which
    hold the change since the instant before (the earliest: whole), so only the instants
    where either profile steps are touched."""
    was_after = was_before = _NOTHING  # the contributions at the instant before
    for index in sorted(before.keys() | after.keys()):
        now_after = after.get(index, was_after)
        now_before = before.get(index, was_before)
        if now_after != was_after or now_before != was_before:
            counts = pending.setdefault(instants[index], {})
            if now_after != was_after:
                _add(counts, now_after, 1)
                _add(counts, was_after, -1)
            if now_before != was_before:
                _add(counts, now_before, -1)
                _add(counts, was_before, 1)
        was_after, was_before = now_after, now_before


def _pop_progress(pending: dict[int, Counts], instant: int, following: int | None) -> Counts:
    """The counts at ``instant``, the earliest pending one (which holds them whole), taken
    out; the ``following`` instant (None: it was the last) takes them in, so its counts
    become whole in turn. Two dict operations, whatever the number of instants."""
    counts = pending.pop(instant, None) or {}
    if following is not None:
        _merge(pending.setdefault(following, {}), counts)
    return counts


def _merge(into: Counts, counts: Counts) -> None:
    for district, row in counts.items():
        total = into.setdefault(district, [0, 0, 0])
        for index, value in enumerate(row):
            total[index] += value


def _pending_instants(policy: Policy, run: RoundRun) -> range:
    """The round's progress instants still to report, in order (empty: none)."""
    first = _next_progress(policy, run)
    if first is None:
        return range(0)
    return range(first, run.defn.closes, policy.round_progress_every)


def _contrib(st: PersonState, defn: RoundDef, instant: int) -> Contrib:
    entry = entry_at(st, instant)
    on_roster = entry is not None and entry.status != "left"
    if defn.cohort is None:
        district = entry.district if on_roster and entry is not None else None
    else:
        district = _cohort_district(st, defn.cohort, instant)
    if district is not None and defn.districts is not None and district not in defn.districts:
        district = None
    sampled = district is not None and _first(st.samples, defn.opens, instant, None) is not None
    site = None
    if not on_roster and st.samples:
        first = _first(st.samples, defn.opens, instant, defn.districts)
        site = None if first is None else first.place.district
    return district, sampled, site


def _add(counts: Counts, contrib: Contrib, sign: int) -> None:
    district, sampled, site = contrib
    if district is not None:
        row = counts.setdefault(district, [0, 0, 0])
        row[0] += sign
        if sampled:
            row[1] += sign
    if site is not None:
        counts.setdefault(site, [0, 0, 0])[2] += sign


def next_due(policy: Policy, shared: Shared) -> int | None:
    """The earliest instant at which a round has a report to make."""
    dues = [due for run in shared.rounds.values() if (due := _next(policy, run)) is not None]
    return min(dues) if dues else None


def fire_rounds(ctx: Context, shared: Shared, persons: Mapping[str, PersonState],
                after_instant: Callable[[], None] | None = None) -> set[str]:
    """Make every round report due by the clock, in order (as_of, round_id, stage), as
    shares of ``persons`` (``ctx.out.round_parts``: :func:`report` sums them), and raise the
    closes' ``round_missed`` alerts; returns the persons whose state changed.
    ``after_instant`` is called once each instant's shares are made: a round arriving after
    a year of hourly reports makes thousands at once, which a caller may pass on as they
    come rather than hold them all."""
    # merged lazily, in order: 300 rounds a year late at a report an hour are 2.6 M reports
    due = heapq.merge(*(_due(ctx.policy, run, round_id, ctx.clock)
                        for round_id, run in shared.rounds.items()))
    touched: set[str] = set()
    items: list[tuple[int, str, int]] = []
    for item in due:
        if items and item[0] != items[0][0]:
            touched |= _fire_instant(ctx, shared, persons, items[0][0], items)
            if after_instant is not None:
                after_instant()
            items = []
        items.append(item)
    if items:
        touched |= _fire_instant(ctx, shared, persons, items[0][0], items)
        if after_instant is not None:
            after_instant()
    return touched


def _next(policy: Policy, run: RoundRun) -> int | None:
    if run.done:
        return None
    if run.closed:
        return run.defn.closes + policy.catchup_within
    progress = _next_progress(policy, run)
    return progress if progress is not None else run.defn.closes


def _next_progress(policy: Policy, run: RoundRun) -> int | None:
    """The round's next progress instant (before its close), or None."""
    defn, every = run.defn, policy.round_progress_every
    after = run.reported if run.reported is not None and run.reported > defn.opens else defn.opens
    instant = defn.opens + ((after - defn.opens) // every + 1) * every
    return instant if instant < defn.closes else None


def _due(policy: Policy, run: RoundRun, round_id: str, clock: int
         ) -> Iterator[tuple[int, str, int]]:
    """(as_of, round_id, stage index) of every report of the round due at or before
    ``clock``, in order: as the round stands now (firing them changes it), made as they are
    asked for."""
    if run.done:
        return iter(())
    defn = run.defn
    parts: list[Iterable[tuple[int, str, int]]] = []
    if not run.closed:
        first = _next_progress(policy, run)
        if first is not None:
            progress = range(first, min(defn.closes, clock + 1), policy.round_progress_every)
            parts.append((instant, round_id, 0) for instant in progress)
        if defn.closes <= clock:
            parts.append(((defn.closes, round_id, 1),))
    final = defn.closes + policy.catchup_within
    if final <= clock:
        parts.append(((final, round_id, 2),))
    return chain.from_iterable(parts)


def _fire_instant(
    ctx: Context, shared: Shared, persons: Mapping[str, PersonState], instant: int,
    items: list[tuple[int, str, int]],
) -> set[str]:
    """Every report due at one instant: one pass over the persons for all that need one."""
    kept: dict[str, Counts] = {}
    for _, round_id, stage in items:
        run = shared.rounds[round_id]
        pending = run.pending
        if stage == 0 and pending is not None:
            instants = _pending_instants(ctx.policy, run)
            if instants and instants[0] == instant:  # kept for this instant
                following = instant + ctx.policy.round_progress_every
                kept[round_id] = _pop_progress(
                    pending, instant, following if following in instants else None)
    scanned = [(round_id, shared.rounds[round_id].defn) for _, round_id, stage in items
               if stage < 2 and round_id not in kept]
    tallies = _tally(scanned, instant, persons) if scanned else {}
    touched: set[str] = set()
    closing = sorted(round_id for _, round_id, stage in items if stage == 1)
    if closing:
        touched = _raise_missed(ctx, persons, instant, closing, tallies)
    for _, round_id, stage in items:
        run = shared.rounds[round_id]
        delays: dict[str, list[int]] = {}
        if stage == 2:
            counts, delays = run.counts or {}, _caught(ctx, run, persons)
            run.done, run.counts, run.missed = True, None, None
        else:
            counts, missed = (kept[round_id], {}) if round_id in kept else tallies[round_id]
            if stage == 1:
                run.closed, run.counts, run.pending = True, counts, None
                run.missed = {person: district for person, (district, _) in missed.items()}
            else:
                run.reported = instant
        ctx.out.round_parts.append(RoundPart(round_id, stage, instant, counts, delays))
    return touched


def _tally(
    rounds: list[tuple[str, RoundDef]], instant: int, persons: Mapping[str, PersonState]
) -> dict[str, tuple[Counts, Missed]]:
    """Each round's counts and missed persons as if it closed at ``instant``."""
    tallies: dict[str, tuple[Counts, Missed]] = {round_id: ({}, {}) for round_id, _ in rounds}
    for person_id, st in persons.items():
        if st.roster is None and st.samples is None and _no_cohorts(st):
            continue
        for round_id, defn in rounds:
            counts, missed = tallies[round_id]
            contrib = _contrib(st, defn, instant)
            _add(counts, contrib, 1)
            district, sampled, _ = contrib
            if district is not None and not sampled:
                entry = entry_at(st, instant)
                grid = entry.grid if entry is not None and entry.status != "left" else None
                missed[person_id] = (district, grid)
    return tallies


def _first(samples: tuple[Sample, ...] | None, low: int, high: int,
           districts: frozenset[str] | None) -> Sample | None:
    """The earliest sampling in [low, high] (at a site in ``districts``, None: any)."""
    for sample in samples or ():
        if sample.at > high:
            break
        if sample.at >= low and (districts is None or sample.place.district in districts):
            return sample
    return None


def _cohort_district(st: PersonState, cohort: str, instant: int) -> str | None:
    """The cohort district of an active member at ``instant`` (of their latest join), or
    None; a leave and a join at one instant leave the person a member (agents/cohorts.py)."""
    loops = st.loops
    member = None if loops is None or loops.cohorts is None else loops.cohorts.get(cohort)
    if member is None:
        return None
    active, district = False, None
    for change in member.changes:
        if change.at > instant:
            break
        active = change.active
        if change.active:
            district = change.district
    return district if active else None


def _raise_missed(
    ctx: Context, persons: Mapping[str, PersonState], instant: int, closing: list[str],
    tallies: dict[str, tuple[Counts, Missed]],
) -> set[str]:
    """One ``round_missed`` per person for the rounds closing at ``instant`` they missed."""
    rounds_of: dict[str, list[str]] = {}
    for round_id in closing:  # sorted: the first round of a person gives district and grid
        for person_id in tallies[round_id][1]:
            rounds_of.setdefault(person_id, []).append(round_id)
    for person_id in sorted(rounds_of):
        missed = rounds_of[person_id]
        district, grid = tallies[missed[0]][1][person_id]
        raise_alert(ctx, persons[person_id], kind="round_missed", subject=person_id,
                    due=instant, person_id=person_id, district=district,
                    details={"rounds": missed, "grid": grid})
    return set(rounds_of)


def _rows(counts: Counts, caught: dict[str, list[int]] | None = None) -> list[RoundRow]:
    rows = []
    for district in sorted(counts):
        in_scope, sampled, not_on_roster = counts[district]
        if not in_scope and not not_on_roster:
            continue  # everyone counted here moved away since
        delays = (caught or {}).get(district, [])
        rows.append(RoundRow(district=district, in_scope=in_scope, sampled=sampled,
                             missed=in_scope - sampled, caught_up=len(delays),
                             not_on_roster=not_on_roster,
                             catchup_median_hours=median_hours(delays)))
    return rows


def _caught(ctx: Context, run: RoundRun, persons: Mapping[str, PersonState]
            ) -> dict[str, list[int]]:
    """The catch-ups of the close's missed persons: their first sampling in (closes, as_of],
    as delays after the close (seconds), by the district of their round_missed."""
    closes = run.defn.closes
    until = closes + ctx.policy.catchup_within
    caught: dict[str, list[int]] = {}
    for person_id, district in (run.missed or {}).items():
        st = persons.get(person_id)
        first = None if st is None else _first(st.samples, closes + 1, until, None)
        if first is not None:
            caught.setdefault(district, []).append(first.at - closes)
    return caught


def report(cal: Calendar, parts: list[RoundPart]) -> RoundReport:
    """The report of one (round, stage, as_of) from the shares of every person partition
    (replay: its one share): counts summed per district, the median over all delays."""
    first = parts[0]
    counts: Counts = {}
    delays: dict[str, list[int]] = {}
    for part in parts:
        for district, row in part.counts.items():
            total = counts.setdefault(district, [0, 0, 0])
            for index, value in enumerate(row):
                total[index] += value
        for district, caught in part.delays.items():
            delays.setdefault(district, []).extend(caught)
    return RoundReport(round_id=first.round_id, stage=STAGES[first.stage],
                       as_of=cal.iso(first.at), rows=_rows(counts, delays))


def median_hours(delays: list[int]) -> float | None:
    """The median of ``delays`` (seconds) in hours, rounded half up to 0.1; None if empty."""
    if not delays:
        return None
    ordered = sorted(delays)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        median = Fraction(ordered[middle])
    else:
        median = Fraction(ordered[middle - 1] + ordered[middle], 2)
    tenths = floor(median / 360 + Fraction(1, 2))
    return tenths / 10
