"""A tube's wait told to its lab (agents/lab_waits.py): the short ways nearly every tube takes
(one lab, received then reported, its wait begun or not) leave the tube and tell the lab
exactly what the general bookkeeping does, whatever the records, their order and the clock."""

from __future__ import annotations

import random

import pytest

from closedloop.agents import lab_waits
from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, fire_due
from closedloop.agents.state import LabReport, TubeState
from closedloop.schemas.policy import default_policy

POLICY = default_policy()
CAL = Calendar(POLICY.zone, POLICY.daily_cutoff)
START = 1_662_415_200  # 2022-09-06 06:00 +08:00
QUIET = POLICY.lab_silent_after

Told = list[tuple[str, list[int], list[int], list[int]]]


def _run(records: list[tuple[int, str, str, str, int]]) -> tuple[Told, dict[str, TubeState]]:
    """Each (clock, tube, lab, status, instant) read in turn, the tube's ``wait`` deadline
    fired first when the clock reached it (as the tube stage fires before it reads); what
    the labs were told, and each tube's state at the end."""
    tubes: dict[str, TubeState] = {}
    told: Told = []
    for clock, tube, lab, status, when in records:
        for name, st in tubes.items():
            ctx = Context(POLICY, CAL, clock)
            fire_due(ctx, st, name, {"wait": lab_waits.lapse_wait})
            told.extend((lab_id, p.starts, p.stops, p.reports) for lab_id, p in ctx.out.labs)
        ctx = Context(POLICY, CAL, clock)
        st = tubes.setdefault(tube, TubeState())
        # as the tube stage decides it (agents/tubes.py): first reported by this lab
        settled = st.wait is None and st.rep is not None and st.rep.lab_id == lab
        lab_waits.on_lab_record(ctx, st, lab, status, when, settled)
        if status == "reported" and st.rep is None:
            st.rep = LabReport(when, "negative", lab)
        told.extend((lab_id, p.starts, p.stops, p.reports) for lab_id, p in ctx.out.labs)
    return told, tubes


def _records(rng: random.Random) -> list[tuple[int, str, str, str, int]]:
    """Tubes mostly received then reported by one lab, some reported before their wait,
    some long after it began, some never; now and then a second lab, a record repeated or
    earlier than one read, a report read before its receipt, a clock far behind."""
    made: list[tuple[int, str, str, str, int]] = []
    for n in range(60):
        tube = f"t{n}"
        got = START + rng.randrange(0, 12 * 3600, 30)
        labs = ["lab-1"] if rng.random() < 0.9 else ["lab-1", "lab-2"]
        for lab in labs:
            made.append((got, tube, lab, "received", got))
            if rng.random() < 0.2:
                made.append((got, tube, lab, "received", got - rng.choice((1, 600, 7200))))
            if rng.random() < 0.9:
                rep = got + rng.choice((0, 1, QUIET - 1, QUIET, QUIET + 1,
                                        rng.randrange(0, 2 * QUIET)))
                made.append((rep, tube, lab, "reported", rep))
                if rng.random() < 0.1:
                    made.append((rep, tube, lab, "reported", rep + rng.randrange(-600, 600)))
    made.sort()
    lag = rng.choice((0, 300, 3 * 3600))
    return [(max(START, when - rng.randrange(0, lag + 1)), tube, lab, status, instant)
            for when, tube, lab, status, instant in sorted(
                made, key=lambda r: r[0] + rng.randrange(0, 600))]


@pytest.mark.parametrize("seed", range(12))
def test_the_short_ways_equal_the_general_bookkeeping(seed: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(random.Random(seed))
    short = _run(records)
    monkeypatch.setattr(lab_waits, "_one_wait", lambda *args: False)
    monkeypatch.setattr(lab_waits, "_one_begun", lambda *args: None)
    general = _run(records)
    assert short == general
    told = short[0]
    assert any(stops and reports for _, _, stops, reports in told)  # waits ended by reports
    assert any(not stops and reports for _, _, stops, reports in told)  # reports alone
    assert any(starts for _, starts, _, _ in told)  # waits begun


def test_a_wait_begun_is_told_once_and_ended_by_its_report() -> None:
    told, tubes = _run([(START, "t1", "lab-1", "received", START),
                        (START + QUIET + 60, "t1", "lab-1", "reported", START + QUIET + 60)])
    assert told == [("lab-1", [START + QUIET], [], []),
                    ("lab-1", [], [START + QUIET + 60], [START + QUIET + 60])]
    assert tubes["t1"].wait is None and tubes["t1"].req is None  # settled: forgotten
