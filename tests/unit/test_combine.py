"""Data-entry parts combined per key and day (agents/combine.py) leave each source's state
and each district's report exactly as applying them one by one does (agents/sources.py
``routes``)."""

from __future__ import annotations

import random
from datetime import datetime

from helpers import local as at

from closedloop.agents.calendar import Calendar
from closedloop.agents.closure import handle_contribution, handle_entry_lags
from closedloop.agents.combine import NEVER, EntryCombiner, LabParts
from closedloop.agents.entry import EntryState, LabState, SourceState, on_told, silence_start
from closedloop.agents.requirements import Context
from closedloop.agents.sources import Entered, on_entered, on_entered_day, routes
from closedloop.agents.state import LabTold, ReportState
from closedloop.schemas.events import Sampling
from closedloop.schemas.policy import default_policy

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
SITES = ("site-1", "site-2", "site-3")
DISTRICTS = ("xuhui", "minhang")


def _records(seed: int) -> list[tuple[int, Sampling, int, int]]:
    """(clock when read, sampling, occurred, receipt): receipts around two cut-offs, some
    before the clock (counted in its next day), lags from none to a day."""
    rng = random.Random(seed)
    clock = at("09-06 20:00")
    made = []
    for i in range(300):
        clock += rng.randrange(0, 120)
        receipt = clock + rng.randrange(-3600, 3 * 3600)
        occurred = receipt - rng.choice((-60, 0, 60, 7200, 7201, 86400))
        sampling = Sampling(
            event_id=f"s{i}", occurred_at=datetime.fromtimestamp(occurred, POLICY.zone),
            person_id=f"pz:{i:08d}",
            tube_id=f"tb-{i}", site_id=rng.choice(SITES), district=rng.choice(DISTRICTS),
            pool_size=1)
        made.append((clock, sampling, occurred, receipt))
    return made


def _sorted_lags(st: EntryState | ReportState) -> None:
    """A day's lags are a multiset: compared sorted."""
    if isinstance(st, EntryState):
        assert st.days is not None
        for day in st.days.days.values():
            day.lags.sort()
    else:
        for values in (st.lags or {}).values():
            values.sort()


def test_combined_parts_leave_every_source_and_report_as_one_by_one() -> None:
    for seed in range(12):
        # a source whose first day is judged already; reports of the day before sent
        judged = {"sampling:site-2": at("09-06 22:00")}
        one = {key: EntryState(days=SourceState(judged=day)) for key, day in judged.items()}
        combined = {key: EntryState(days=SourceState(judged=day))
                    for key, day in judged.items()}
        one_reports = {d: ReportState(reported="2022-09-05") for d in DISTRICTS}
        combined_reports = {d: ReportState(reported="2022-09-05") for d in DISTRICTS}
        combiner = EntryCombiner(POLICY, CAL, judged.get)
        earliest = NEVER
        for clock, sampling, occurred, receipt in _records(seed):
            ctx = Context(POLICY, CAL, clock)
            sent, contribution = routes(POLICY, "sampling", sampling, occurred, receipt)
            for key, item in sent:
                assert isinstance(item, Entered)
                st = one.setdefault(key, EntryState())
                on_entered(ctx, st, key, item)
                assert st.days is not None
                earliest = min(earliest, *st.days.days)
            assert contribution is not None
            handle_contribution(ctx, one_reports[sampling.district], sampling.district,
                                contribution)
            late = combiner.record("sampling", sampling.site_id, sampling.district, receipt,
                                   occurred, clock)
            assert late == (contribution.field == "entry_late")
            for district, overdue in combiner.overdue:  # applied at once, as replay does
                handle_entry_lags(ctx, combined_reports[district], district, overdue)
            combiner.overdue.clear()
        # due by the earliest cut-off held: the clock must not pass it before they apply
        assert combiner.due <= earliest
        days, lags = combiner.take()
        assert not combiner and combiner.due == NEVER
        ctx = Context(POLICY, CAL, at("09-08 00:00"))
        for key, day in days:
            on_entered_day(ctx, combined.setdefault(key, EntryState()), key, day)
        for district, item in lags:
            handle_entry_lags(ctx, combined_reports[district], district, item)
        for st in (*one.values(), *combined.values(), *one_reports.values(),
                   *combined_reports.values()):
            _sorted_lags(st)
        assert one == combined, seed
        assert one_reports == combined_reports, seed


def test_the_workers_parts_combine_as_replays_records() -> None:
    """The worker combines a pack's ``Entered`` parts and entry contributions, one clock for
    the pack; replay combines the records they come from: the same groups."""
    judged = {"sampling:site-2": at("09-06 22:00")}
    clock = at("09-06 23:00")
    from_records = EntryCombiner(POLICY, CAL, judged.get)
    from_parts = EntryCombiner(POLICY, CAL, judged.get)
    for _, sampling, occurred, receipt in _records(3):
        from_records.record("sampling", sampling.site_id, sampling.district, receipt,
                            occurred, clock)
        sent, contribution = routes(POLICY, "sampling", sampling, occurred, receipt)
        for key, item in sent:
            assert isinstance(item, Entered)
            from_parts.entered(key, item, clock)
        assert contribution is not None
        from_parts.contributed(contribution.district, contribution.at, contribution.d,
                               contribution.field == "entry_late", clock)
    assert from_records.overdue and from_parts.overdue == from_records.overdue
    assert from_parts.due == from_records.due
    assert from_parts.take() == from_records.take()


class TestALabsHeldParts:
    """What tubes tell a lab, held as one part (agents/combine.py ``LabParts``), leaves the
    lab's state as the parts one by one do, at one clock: the parts of facts the clock has
    not passed, as a lab is told them (a wait when the tube stage's clock reaches it,
    which the lab's clock follows; reports as they are read)."""

    def test_one_step_equals_the_parts_one_by_one(self) -> None:
        rng = random.Random(7)
        start = at("09-06 06:00")
        parts = [LabTold(sorted(rng.sample(range(start, start + 20000, 60), 3)),
                         [start + 30000 + n], [start + rng.randrange(0, 40000)])
                 for n in range(40)]
        clock = start - 1
        one_by_one = LabState()
        followed = [on_told(POLICY, one_by_one, p.starts, p.stops, p.reports, clock)
                    for p in parts]
        held = LabParts(POLICY)
        for part in parts:
            held.add("lab-1", LabTold(list(part.starts), list(part.stops),
                                      list(part.reports)))
        assert held.due <= min(min(p.reports) + POLICY.lab_silent_after for p in parts)
        ((lab_id, told),) = held.take()
        at_once = LabState()
        assert lab_id == "lab-1" and not held and held.due == NEVER
        assert on_told(POLICY, at_once, told.starts, told.stops, told.reports, clock) == \
            followed[-1]
        assert at_once == one_by_one

    def test_held_parts_are_due_before_any_silence_they_bring_forward(self) -> None:
        """A lab that has not been told its held parts fires at its own next silence; the
        parts must reach it by ``due`` when, told, the lab's first silence would come
        earlier than that: the first silence of the lab told them is never before both its
        own deadline untold and ``due``. Waits told late, retentions ending them, reports
        held, around reports the lab knows, before and after the instant it judged to."""
        rng = random.Random(13)
        quiet = POLICY.lab_silent_after
        base = at("09-06 06:00")
        brought_forward = 0

        def instants(n: int) -> list[int]:
            return [base + rng.randrange(0, 5 * quiet, 60) for _ in range(rng.randrange(n))]

        for _ in range(400):
            known = LabState()
            on_told(POLICY, known, instants(4), instants(2), instants(5),
                    rng.choice((None, base + rng.randrange(0, 3 * quiet, 60))))
            untold = silence_start(POLICY, known)
            held = LabParts(POLICY, lambda lab_id, reports=known.reports: reports)
            for _ in range(rng.randrange(1, 5)):
                held.add("lab-1", LabTold(instants(3), instants(2), instants(2)))
            told = LabState(waiting=known.waiting, changes=dict(known.changes),
                            reports=list(known.reports), examined=known.examined)
            due = held.due
            for _, part in held.take():
                on_told(POLICY, told, part.starts, part.stops, part.reports)
            first = silence_start(POLICY, told)
            if first is not None:
                assert min(NEVER if untold is None else untold, due) <= first
                brought_forward += untold is None or first < untold
        assert brought_forward > 20  # the held parts did bring silences forward
