"""Supervision: findings, rectification, look-back (CONTRACT.md v1.2 §4; 督导检查闭环管理).

Pure rules over one unit's state (:class:`UnitState`, the state of a stage keyed by
``unit_id``), with no runtime in them: instants are epoch seconds, what a rule raises is a
:class:`~closedloop.agents.raised.Raised`, and every function that schedules returns the
state's next deadline.

A finding's story is read from its records in event time (:func:`timeline`), whatever order
they arrived in; at equal instants a finding comes before its rectification, and a
rectification before a recheck.

- A finding opens it. No ``rectified`` in [opened, opened + ``rectify_within``] (by
  severity; both ends in time) → ``rectification_overdue`` at the window's end. A later
  rectification still starts the look-back.
- The first ``rectified`` after the finding opens (or opens again) starts the look-back: no
  ``recheck`` in [rectified, rectified + ``recheck_within``] → ``recheck_missed`` at its end.
  Later rectifications before the recheck are ignored (and counted).
- A ``recheck`` that passes closes the finding, whatever came before. One that fails raises
  ``recheck_failed`` at its instant and opens the finding again from there. A recheck that
  comes late still counts: the lapse stands, and the finding closes or opens again.
- A finding in a category in which the unit had another finding in [its occurred_at −
  ``repeat_window``, its occurred_at) → ``repeat_offender`` at its occurred_at.
- Lapses of one unit at one instant share one alert (``findings`` lists them); what the
  daily report counts is findings (:class:`Lapse`, :func:`report_counts`).
- A record whose finding has not arrived when the clock passes its occurred_at +
  ``orphan_after`` raises nothing and is counted; a second finding with a finding_id the unit
  already has is ignored and counted. A finding is forgotten ``repeat_window`` after its
  last record, once nothing of it is still due.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import msgspec

from closedloop.agents.calendar import Calendar
from closedloop.agents.raised import Raised
from closedloop.schemas.events import Inspection
from closedloop.schemas.outputs import FindingStatus, FindingStep, UnitStatus
from closedloop.schemas.policy import Policy

__all__ = [
    "Finding",
    "Judged",
    "Lapse",
    "Part",
    "Step",
    "UnitState",
    "counted",
    "fire",
    "fire_counted",
    "forget_due",
    "is_open",
    "next_due",
    "on_inspection",
    "on_inspection_counted",
    "open_findings",
    "open_spans",
    "report_counts",
    "span_deltas",
    "timeline",
    "unit_status",
]

RECTIFICATION_OVERDUE: Final = "rectification_overdue"
RECHECK_MISSED: Final = "recheck_missed"
RECHECK_FAILED: Final = "recheck_failed"
REPEAT_OFFENDER: Final = "repeat_offender"
_RANK: Final = {"finding": 0, "rectified": 1, "recheck": 2}
# The report column each lapse of a finding counts in (recheck_missed has none: §4).
COLUMN: Final = {RECTIFICATION_OVERDUE: "rectifications_overdue",
                 RECHECK_FAILED: "rechecks_failed", REPEAT_OFFENDER: "repeat_offenders"}


class Step(msgspec.Struct, array_like=True, frozen=True):
    """A rectification or recheck of a finding: when, and a recheck's result."""

    record: str
    at: int
    result: str | None = None


class Finding(msgspec.Struct, kw_only=True):
    finding_id: str
    at: int
    category: str
    severity: str
    unit_kind: str
    district: str
    steps: list[Step] = msgspec.field(default_factory=list)


class UnitState(msgspec.Struct, kw_only=True):
    """A unit's findings, the records still waiting for theirs, what was counted, and how far
    the unit's lapses have been judged (every lapse due before ``judged`` was)."""

    findings: dict[str, Finding] = msgspec.field(default_factory=dict)
    orphans: dict[str, list[Step]] = msgspec.field(default_factory=dict)
    judged: int | None = None
    duplicates: int = 0  # findings whose finding_id the unit already had
    orphaned: int = 0  # records whose finding never came in time


class Lapse(msgspec.Struct, frozen=True, array_like=True):
    """One finding's lapse: what the daily report counts (in the finding's district)."""

    kind: str
    due: int
    finding_id: str
    district: str


class Judged(msgspec.Struct, kw_only=True):
    alerts: list[Raised]
    lapses: list[Lapse]
    due: int | None  # the state's next deadline


# -- records in ------------------------------------------------------------------------------


def on_inspection(policy: Policy, st: UnitState, event: Inspection, at: int) -> int | None:
    """Apply one inspection record (``at``: its occurred_at); returns the next deadline."""
    if event.record == "finding":
        if event.finding_id in st.findings:
            st.duplicates += 1
        else:
            assert event.category is not None and event.severity is not None  # the decoder's
            st.findings[event.finding_id] = Finding(
                finding_id=event.finding_id, at=at, category=event.category,
                severity=event.severity, unit_kind=event.unit_kind, district=event.district,
                steps=st.orphans.pop(event.finding_id, []))
    else:
        step = Step(event.record, at, event.result)
        finding = st.findings.get(event.finding_id)
        if finding is None:
            st.orphans.setdefault(event.finding_id, []).append(step)
        else:
            finding.steps.append(step)
    return next_due(policy, st)


# -- a finding's story -------------------------------------------------------------------------


def timeline(policy: Policy, finding: Finding) -> tuple[list[tuple[str, int]], int | None, int]:
    """What the finding's records make of it: its lapses ``(kind, due)`` in order (those not
    due yet included, as the records stand), the instant a passed recheck closed it (None:
    open after its last record), and how many rectifications started nothing."""
    window = policy.rectify_within[finding.severity]
    lapses: list[tuple[str, int]] = []
    is_closed = False
    closed_at: int | None = None
    rectified = False  # the current opening had its first rectification
    rectify_due: int | None = finding.at + window
    look_due: int | None = None
    ignored = 0
    for step in sorted(finding.steps, key=lambda s: (s.at, _RANK[s.record])):
        if rectify_due is not None and rectify_due < step.at:  # at the due instant: in time
            lapses.append((RECTIFICATION_OVERDUE, rectify_due))
            rectify_due = None
        if look_due is not None and look_due < step.at:
            lapses.append((RECHECK_MISSED, look_due))
            look_due = None
        if step.record == "rectified":
            if is_closed or rectified or step.at < finding.at:
                ignored += 1
            else:  # on time or late, it starts the look-back
                rectified, rectify_due = True, None
                look_due = step.at + policy.recheck_within
        elif step.at < finding.at:
            continue  # a recheck before its finding looks back at nothing
        elif step.result == "pass":
            is_closed, closed_at, rectify_due, look_due = True, step.at, None, None
        else:
            lapses.append((RECHECK_FAILED, step.at))
            is_closed, closed_at, rectified = False, None, False
            rectify_due, look_due = step.at + window, None
    lapses += [(kind, due) for due, kind in ((rectify_due, RECTIFICATION_OVERDUE),
                                             (look_due, RECHECK_MISSED)) if due is not None]
    return lapses, closed_at, ignored


def is_open(policy: Policy, finding: Finding, at: int) -> bool:
    """Not closed by a passed recheck at ``at`` (records after ``at`` not considered)."""
    earlier = Finding(finding_id=finding.finding_id, at=finding.at, category=finding.category,
                      severity=finding.severity, unit_kind=finding.unit_kind,
                      district=finding.district,
                      steps=[s for s in finding.steps if s.at <= at])
    return finding.at <= at and timeline(policy, earlier)[1] is None


def _repeats(policy: Policy, st: UnitState, finding: Finding) -> list[str]:
    """The unit's other findings in the category in [its instant − repeat_window, its instant)."""
    since = finding.at - policy.repeat_window
    return sorted(other.finding_id for other in st.findings.values()
                  if other.category == finding.category and since <= other.at < finding.at)


def _lapses(policy: Policy, st: UnitState) -> list[Lapse]:
    """Every lapse of every finding, as the records stand, in (due, kind, finding_id) order."""
    found: list[Lapse] = []
    for finding in st.findings.values():
        for kind, due in timeline(policy, finding)[0]:
            found.append(Lapse(kind, due, finding.finding_id, finding.district))
        if _repeats(policy, st, finding):
            found.append(Lapse(REPEAT_OFFENDER, finding.at, finding.finding_id,
                               finding.district))
    return sorted(found, key=lambda lapse: (lapse.due, lapse.kind, lapse.finding_id))


# -- the clock -------------------------------------------------------------------------------


def next_due(policy: Policy, st: UnitState) -> int | None:
    """The earliest lapse not judged yet, or the earliest orphan's time to give up."""
    judged = st.judged
    dues = [lapse.due for lapse in _lapses(policy, st) if judged is None or lapse.due >= judged]
    dues += [min(step.at for step in steps) + policy.inspection_orphan_after
             for steps in st.orphans.values()]
    return min(dues, default=None)


def fire(policy: Policy, st: UnitState, unit_id: str, clock: int) -> Judged:
    """When the clock (the watermark: no fact before it is still to come) reached the
    state's deadline: the alerts of every lapse due by ``clock`` not judged before (one per
    kind and instant), the findings' lapses for the report, orphans given up, findings
    forgotten; and the next deadline."""
    judged = st.judged
    due_now = [lapse for lapse in _lapses(policy, st)
               if (judged is None or lapse.due >= judged) and lapse.due <= clock]
    alerts = [_alert(policy, st, unit_id, kind, due, ids)
              for (kind, due), ids in _grouped(due_now).items()]
    st.judged = clock + 1
    for finding_id in [f for f, steps in st.orphans.items()
                       if min(s.at for s in steps) + policy.inspection_orphan_after <= clock]:
        st.orphaned += len(st.orphans.pop(finding_id))
    _forget(policy, st, clock)
    return Judged(alerts=alerts, lapses=due_now, due=next_due(policy, st))


def _grouped(lapses: list[Lapse]) -> dict[tuple[str, int], list[str]]:
    grouped: dict[tuple[str, int], list[str]] = {}
    for lapse in lapses:
        grouped.setdefault((lapse.kind, lapse.due), []).append(lapse.finding_id)
    return grouped


def _alert(policy: Policy, st: UnitState, unit_id: str, kind: str, due: int, ids: list[str]
           ) -> Raised:
    ids = sorted(ids)
    first = st.findings[ids[0]]
    if kind == REPEAT_OFFENDER:  # findings of one instant share the alert: the first's
        previous = _repeats(policy, st, first)
        return Raised(kind=kind, subject=unit_id, due=due, district=first.district, details={
            "finding_id": first.finding_id, "category": first.category,
            "unit_kind": first.unit_kind, "findings_in_window": len(previous) + 1,
            "previous": previous})
    return Raised(kind=kind, subject=unit_id, due=due, district=first.district,
                  details={"finding_id": first.finding_id, "findings": ids,
                           "category": first.category, "severity": first.severity,
                           "unit_kind": first.unit_kind})


def _forget(policy: Policy, st: UnitState, clock: int) -> None:
    """Findings whose last record is ``repeat_window`` old, with nothing still due."""
    oldest = clock - policy.repeat_window
    for finding_id in list(st.findings):
        finding = st.findings[finding_id]
        last = max([finding.at, *(s.at for s in finding.steps)])
        if last < oldest and all(due <= clock for _, due in timeline(policy, finding)[0]):
            del st.findings[finding_id]


def forget_due(policy: Policy, st: UnitState) -> int | None:
    """The earliest clock at which :func:`fire` forgets one of the unit's findings: its last
    record ``repeat_window`` old and nothing of it still due. A stage keeps the unit until
    then (its findings are what a later finding is a repeat of)."""
    dues = [max([max([finding.at, *(s.at for s in finding.steps)]) + policy.repeat_window + 1,
                 *(due for _, due in timeline(policy, finding)[0])])
            for finding in st.findings.values()]
    return min(dues, default=None)


COUNTED: Final = ("duplicate_findings", "orphan_records", "rectifications_ignored")
"""What :func:`counted` counts, by name."""


def counted(policy: Policy, st: UnitState) -> Counter[str]:
    """What the unit ignored, as §4 says to count it: findings given again, records whose
    finding never came, rectifications that started nothing (of the findings still kept)."""
    ignored = sum(timeline(policy, finding)[2] for finding in st.findings.values())
    return Counter(dict(zip(COUNTED, (st.duplicates, st.orphaned, ignored), strict=True)))


# -- the daily report --------------------------------------------------------------------------


def report_counts(policy: Policy, st: UnitState, start: int, end: int
                  ) -> dict[str, Counter[str]]:
    """The unit's share of each district's supervision columns for the window (start, end]:
    findings_new (made in it), findings_open (not closed by a passed recheck at ``end``),
    rectifications_overdue, rechecks_failed and repeat_offenders (findings whose lapse, failed
    recheck or repeat is due in it); in the finding's district."""
    counts: dict[str, Counter[str]] = {}
    for finding in st.findings.values():
        tally = counts.setdefault(finding.district, Counter())
        tally["findings_new"] += start < finding.at <= end
        tally["findings_open"] += is_open(policy, finding, end)
    for lapse in _lapses(policy, st):
        column = COLUMN.get(lapse.kind)
        if column is not None and start < lapse.due <= end:
            counts.setdefault(lapse.district, Counter())[column] += 1
    return counts


# -- the unit's status, for the ledger ---------------------------------------------------------


def unit_status(policy: Policy, cal: Calendar, unit_id: str, st: UnitState, updated: int
                ) -> UnitStatus:
    """The unit's findings as their records stand (``updated``: the instant of the change,
    the stage's clock), each open unless a passed recheck closed it; its rectifications and
    rechecks in event time (those before the finding included: a reader sees what came)."""
    findings = []
    for finding in sorted(st.findings.values(), key=lambda f: (f.at, f.finding_id)):
        closed = timeline(policy, finding)[1]
        steps = sorted(finding.steps, key=lambda s: (s.at, _RANK[s.record]))
        findings.append(FindingStatus(
            finding_id=finding.finding_id, unit_kind=finding.unit_kind,
            district=finding.district, category=finding.category, severity=finding.severity,
            found_at=cal.iso(finding.at), closed_at=None if closed is None else cal.iso(closed),
            steps=[FindingStep(record="rectified" if step.record == "rectified" else "recheck",
                               at=cal.iso(step.at),
                               result=None if step.result is None
                               else ("pass" if step.result == "pass" else "fail"))
                   for step in steps]))
    return UnitStatus(unit_id=unit_id, updated_at=cal.iso(updated), findings=findings)


def open_findings(policy: Policy, st: UnitState) -> Counter[tuple[str, str]]:
    """The unit's findings not closed by a passed recheck, as the records stand, by
    (district, severity): its share of the open-findings gauge."""
    return Counter((finding.district, finding.severity) for finding in st.findings.values()
                   if timeline(policy, finding)[1] is None)


def open_spans(finding: Finding) -> list[tuple[int, int | None]]:
    """The intervals [start, end) in which the finding is open (:func:`is_open`), as its
    records stand: from its instant until a passed recheck, again from a failed one; the last
    one unbounded (None) while it stays open. The daily report's ``findings_open`` is a gauge
    of these, contributed as +1 at each start and -1 at each end."""
    spans: list[tuple[int, int | None]] = []
    start: int | None = finding.at
    for step in sorted(finding.steps, key=lambda s: (s.at, _RANK[s.record])):
        if step.record != "recheck" or step.at < finding.at:
            continue
        if step.result == "pass":
            if start is not None and step.at > start:
                spans.append((start, step.at))
            start = None
        elif start is None:
            start = step.at
    if start is not None:
        spans.append((start, None))
    return spans


def span_deltas(old: list[tuple[int, int | None]], new: list[tuple[int, int | None]]
                ) -> list[tuple[int, int]]:
    """What moves a gauge from counting the spans ``old`` to counting ``new``: (instant,
    change) pairs, by instant, none zero. A record that arrives late changes a finding's spans
    retroactively; a stage that remembers what it contributed sends only this difference."""
    change: Counter[int] = Counter()
    for spans, sign in ((old, -1), (new, 1)):
        for start, end in spans:
            change[start] += sign
            if end is not None:
                change[end] -= sign
    return sorted((at, n) for at, n in change.items() if n)


# -- what the stage contributes to the daily report ---------------------------------------------


class Part(msgspec.Struct, frozen=True, array_like=True):
    """Count ``d`` in ``field`` of ``district``'s daily report at instant ``at``: how the
    supervision columns reach the report stage (its contributions)."""

    district: str
    at: int
    field: str
    d: int


def on_inspection_counted(policy: Policy, st: UnitState, event: Inspection, at: int
                          ) -> tuple[int | None, list[Part]]:
    """:func:`on_inspection`, and what the record changes in the daily report: a new finding
    counts in findings_new at its instant; the finding's open spans move findings_open by
    their difference (a recheck arriving late closes or opens it at its own instant)."""
    finding_id = event.finding_id
    held = st.findings.get(finding_id)
    before = [] if held is None else open_spans(held)
    due = on_inspection(policy, st, event, at)
    finding = st.findings.get(finding_id)
    if finding is None:
        return due, []
    parts = [] if held is not None else [Part(finding.district, finding.at, "findings_new", 1)]
    parts += [Part(finding.district, instant, "findings_open", d)
              for instant, d in span_deltas(before, open_spans(finding))]
    return due, parts


def fire_counted(policy: Policy, st: UnitState, unit_id: str, clock: int
                 ) -> tuple[Judged, list[Part]]:
    """:func:`fire`, and what it changes in the daily report: each finding's lapse, failed
    recheck or repeat counts in its column at its instant; a finding forgotten while open
    leaves findings_open now."""
    spans = {finding_id: (finding.district, open_spans(finding))
             for finding_id, finding in st.findings.items()}
    judged = fire(policy, st, unit_id, clock)
    parts = [Part(lapse.district, lapse.due, COLUMN[lapse.kind], 1)
             for lapse in judged.lapses if lapse.kind in COLUMN]
    for finding_id, (district, held) in spans.items():
        if finding_id not in st.findings and held and held[-1][1] is None:
            parts.append(Part(district, max(clock, held[-1][0]), "findings_open", -1))
    return judged, parts
