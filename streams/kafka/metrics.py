"""The worker's Prometheus metrics, and the pure helpers that compute them from keyed state.

Every label comes from a closed set (topic short name, rejection reason, alert kind,
requirement kind, stage, regimen, partition number, action): never a person, tube or site
identifier, which would leak pseudonyms into monitoring and explode its cardinality.

Gauges that describe keyed state are kept cheap: the worker reports each key its messages
touched (:meth:`WorkerMetrics.touched`), a per-partition :class:`KeyTally` remembers what that
key contributes and adjusts counts by the difference, and a partition's whole tally is built
only when the partition is recovered or dropped when it is revoked. Clock-dependent values
(persons under control, watermark and consumer lag) are computed when ``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from closedloop.agents import supervision, travel
from closedloop.agents.actions import ACTIONS
from closedloop.agents.escalation import ENGINE_REASONS
from closedloop.agents.state import Keyed, PersonState, TubeState, split_name
from closedloop.schemas.outputs import RoundReport, RoundRow
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import MIN_EPOCH

__all__ = [
    "ENTRY_LAG_BUCKETS",
    "ENTRY_OUTCOMES",
    "LAB_STAGES",
    "LATENCY_BUCKETS",
    "SUPERVISION_STAGE",
    "TURNAROUND_BUCKETS",
    "FindingTally",
    "KeyTally",
    "WorkerMetrics",
    "consumer_lag",
    "control_interval",
    "requirement_kinds",
    "round_coverage",
    "scrape_lags",
    "turnarounds",
]

# The contract's lab SLA stages (agents/tubes.py): transport = collection to the first lab
# record (received or reported, SLA received_within), result = collection to the report
# (SLA reported_within). The same names as `details.stage` of lab_sla_breached alerts.
LAB_STAGES: Final = ("transport", "result")
# Around the default SLAs (4 h transport, 12 h result), up to two days.
TURNAROUND_BUCKETS: Final = (900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0, 28800.0,
                             43200.0, 86400.0, 172800.0)
# The wall-clock objective is an alert within 1 s of its trigger: a bucket at exactly 1 s.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Data entry (v1.2): around the topics' entry_within (1 h checkpoint and round, 2 h sampling,
# lab, travel and area, 4 h followup and clinic, 24 h population, cohort and inspection).
ENTRY_LAG_BUCKETS: Final = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
                            43200.0, 86400.0, 172800.0)
TALLIED_STAGES: Final = ("tube", "person")  # the loops' requirements; report cut-offs are not
ENTRY_OUTCOMES: Final = ("with_proof", "without_proof")  # the proof rule, judged at the entry
SUPERVISION_STAGE: Final = "supervision"  # the stage keyed by unit_id (v1.2)


def requirement_kinds(st: object) -> Counter[str]:
    """Open requirements of a key (its state, or None) by kind (the name before ``:``),
    without ``gc`` (kept apart from ``req``, in ``gc_due``).

    ``gc`` is bookkeeping (forgetting an idle key), not something a person or lab owes.
    """
    kinds: Counter[str] = Counter()
    if isinstance(st, Keyed):
        for name in st.req or ():
            kinds[split_name(name)[0]] += 1
    return kinds


def control_interval(policy: Policy, st: object) -> tuple[int, int, str] | None:
    """(located, end, regimen mode) of a person's push, once located; else None.

    A person is under control while ``located <= clock < end``, exactly as
    ``person_status`` decides ``under_control``; the regimen is the push's mode.
    """
    if not isinstance(st, PersonState) or st.loops is None or st.loops.push is None:
        return None
    push = st.loops.push
    located = travel.located_at(st, push)
    regimen = policy.regimens.get(push.risk)
    if located is None or regimen is None:
        return None
    return located, travel.control_end(st, push), regimen.mode


def turnarounds(st: object) -> dict[str, int]:
    """Seconds from a tube's earliest collection to its lab records, by lab SLA stage.

    Only stages whose both ends are known (a result may arrive before the sampling);
    a lab record stamped before the collection is noise and yields nothing.
    """
    if not isinstance(st, TubeState) or st.first is None:
        return {}
    first = st.first
    ends = {"transport": st.recv, "result": None if st.rep is None else st.rep.at}
    return {stage: end - first for stage, end in ends.items()
            if end is not None and end >= first}


def round_coverage(row: RoundRow) -> tuple[float | None, int]:
    """(covered share, persons still missing) of one district's row of a round report.

    Covered: sampled in the round, or (after the close) caught up since; None when nobody is
    in scope (a district with only people not on the roster).
    """
    missing = row.missed - row.caught_up
    if row.in_scope == 0:
        return None, missing
    return (row.sampled + row.caught_up) / row.in_scope, missing


def consumer_lag(highwater: int | None, read: int | None, committed: int | None) -> int | None:
    """Records not yet read on a partition: highwater − next offset to read; None if unknown.

    The next offset is the last read + 1, or the group's committed offset before this worker
    read anything (Faust's bookkeeping, as ``unread`` in the worker uses). Without either,
    only an empty partition's lag is known.
    """
    if highwater is None:
        return None
    following = read + 1 if read is not None else committed
    if following is None:
        return 0 if highwater == 0 else None  # an empty partition has nothing to read
    return max(0, highwater - following)


class _Summary(NamedTuple):
    kinds: tuple[tuple[str, int], ...]  # open requirements by kind, sorted
    control: tuple[int, int, str] | None
    measured: frozenset[str]  # lab stages whose turnaround was already observed


_SHARED_MAX: Final = 4096
"""Distinct summaries without a control interval kept for sharing (a tube's, most persons'):
they take a handful of values, and one object per key for each would cost more than a key's
whole state."""


def _shared(summary: _Summary, pool: dict[_Summary, _Summary]) -> _Summary:
    """One object for every equal summary without a control interval (those with one hold
    the person's own times)."""
    if summary.control is not None:
        return summary
    known = pool.get(summary)
    if known is not None:
        return known
    if len(pool) < _SHARED_MAX:
        pool[summary] = summary
    return summary


@dataclass
class KeyTally:
    """What each key of one stage's partitions contributes to the state gauges.

    Counts change by the difference between a key's old and new summary, so a message costs
    O(its key's requirements); a turnaround is reported once per tube and stage, the first
    time both ends are known on this worker (keys recovered from the table count as seen).
    """

    policy: Policy
    stage: str  # tube: lab turnarounds; person: control intervals
    keys: dict[int, dict[str, _Summary]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    _pool: dict[_Summary, _Summary] = field(default_factory=dict, repr=False)

    def load(self, partition: int, items: Iterable[tuple[str, object]]) -> None:
        """A recovered partition: its keys as they are now, without observing anything."""
        self.drop(partition)
        person = self.stage == "person"
        for key, st in items:
            # A restore brings every key, and most have nothing to tally (no open
            # requirement, no push, no turnaround): those skip update(), which would find so.
            if not isinstance(st, Keyed):
                continue
            if st.req or (isinstance(st, PersonState) and st.loops is not None if person
                          else isinstance(st, TubeState) and st.first is not None):
                self.update(partition, key, st, observe=False)

    def drop(self, partition: int) -> None:
        for summary in self.keys.pop(partition, {}).values():
            self.kinds.subtract(dict(summary.kinds))
        self._tidy()

    def update(self, partition: int, key: str, st: object, *, observe: bool = True
               ) -> dict[str, int]:
        """Record ``key``'s new state; returns the turnarounds (stage → s) new to observe."""
        held = self.keys.get(partition)
        if held is None:
            held = self.keys[partition] = {}
        old = held.pop(key, None)
        kinds = self.kinds
        if old is not None:
            for kind, n in old.kinds:  # a kind that reaches 0 leaves the tally
                left = kinds[kind] - n
                if left > 0:
                    kinds[kind] = left
                else:
                    del kinds[kind]
        if not isinstance(st, Keyed):
            return {}
        known = turnarounds(st) if self.stage == "tube" else {}
        measured = old.measured if old is not None else frozenset()
        fresh = {stage: seconds for stage, seconds in known.items()
                 if observe and stage not in measured}
        control = control_interval(self.policy, st) if self.stage == "person" else None
        summary = _Summary(tuple(sorted(requirement_kinds(st).items())), control,
                           measured | frozenset(known) if known else measured)
        if summary.kinds or summary.control or summary.measured:
            held[key] = _shared(summary, self._pool)
        for kind, n in summary.kinds:
            kinds[kind] += n
        return fresh

    def under_control(self, clocks: Mapping[int, int]) -> Counter[str]:
        """Persons under control by regimen, at each partition's clock (unknown: skipped)."""
        counts: Counter[str] = Counter()
        for partition, held in self.keys.items():
            clock = clocks.get(partition, MIN_EPOCH)
            if clock == MIN_EPOCH:
                continue
            for summary in held.values():
                control = summary.control
                if control is not None and control[0] <= clock < control[1]:
                    counts[control[2]] += 1
        return counts

    def _tidy(self) -> None:
        for kind in [k for k, n in self.kinds.items() if n <= 0]:
            del self.kinds[kind]


@dataclass
class FindingTally:
    """Open supervision findings of the unit keys this worker owns, by (district, severity).

    Each key remembers its share (:func:`supervision.open_findings`, as the unit's records
    stand), so a message costs O(its unit's findings); a partition's share is dropped when it
    is revoked and rebuilt when it is recovered.
    """

    policy: Policy
    keys: dict[int, dict[str, Counter[tuple[str, str]]]] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def load(self, partition: int, items: Iterable[tuple[str, object]]) -> None:
        self.drop(partition)
        for key, st in items:
            self.update(partition, key, st)

    def drop(self, partition: int) -> None:
        for share in self.keys.pop(partition, {}).values():
            self.counts.subtract(share)
        self.counts = +self.counts

    def update(self, partition: int, key: str, st: object) -> None:
        held = self.keys.setdefault(partition, {})
        old = held.pop(key, None)
        if old is not None:
            self.counts.subtract(old)
        unit = getattr(st, "unit", st)  # the stage's key holds the unit's state
        if isinstance(unit, supervision.UnitState):
            share = supervision.open_findings(self.policy, unit)
            if share:
                held[key] = share
                self.counts.update(share)
        self.counts = +self.counts


class WorkerMetrics:
    """Every ``closedloop_*`` metric of one worker process, and how the worker feeds them.

    Built once per process: prometheus-client's default registry refuses a name twice.
    """

    def __init__(self, policy: Policy, registry: Any = None) -> None:
        """``registry``: prometheus-client's default registry unless given (tests)."""
        from prometheus_client import REGISTRY, Gauge, Histogram
        from prometheus_client import Counter as PCounter

        reg = REGISTRY if registry is None else registry

        def counter(name: str, doc: str, *labels: str) -> Any:
            return PCounter(name, doc, labels, registry=reg)

        def gauge(name: str, doc: str, *labels: str) -> Any:
            return Gauge(name, doc, labels, registry=reg)

        self.consumed = counter("closedloop_events_consumed_total", "input events consumed",
                                "topic")
        self.rejected = counter("closedloop_events_rejected_total", "inputs rejected",
                                "topic", "reason")
        self.duplicates = counter("closedloop_duplicate_events_total",
                                  "duplicate event_ids ignored", "topic")
        self.ignored = counter(
            "closedloop_records_ignored_total",
            "records a rule ignored and counted (the contract's supervision records: findings "
            "given again, records whose finding never came, rectifications before a recheck)",
            "what")
        for what in supervision.COUNTED:  # every series from the start, at 0
            self.ignored.labels(f"supervision:{what}")
        self.raised = counter("closedloop_alerts_raised_total", "alerts raised", "kind")
        self.actions = counter("closedloop_alert_actions_total",
                               "operator actions applied from the action topic", "action")
        self.actions_ignored = counter(
            "closedloop_alert_actions_ignored_total",
            "operator actions that reached their subject's state and were ignored, by reason",
            "reason")
        self.coverage = gauge("closedloop_round_coverage_ratio",
                              "share of a testing round's persons in scope sampled in it (and, "
                              "after the close, caught up), as of its latest report",
                              "round_id", "district")
        self.round_missed = gauge("closedloop_round_missed",
                                  "persons in scope of a testing round not sampled in it and not "
                                  "caught up yet, as of its latest report", "round_id", "district")
        self.entries = counter("closedloop_checkpoint_entries_total",
                               "checkpoint entries, by role and whether a valid proof was shown",
                               "role", "outcome")
        self.index_size = gauge("closedloop_deadline_index_size", "open deadlines indexed",
                                "stage")
        self.open_requirements = gauge("closedloop_open_requirements",
                                       "open requirements of this worker's keys, by kind", "kind")
        self.findings_open = gauge("closedloop_findings_open",
                                   "supervision findings not closed by a passed recheck, of the "
                                   "units this worker owns", "district", "severity")
        self.under_control = gauge("closedloop_persons_under_control",
                                   "located persons whose regimen has not ended, by regimen",
                                   "regimen")
        self.watermark_lag = gauge("closedloop_watermark_lag_seconds",
                                   "wall time minus the partition's effective clock",
                                   "stage", "partition")
        self.consumer_lag = gauge("closedloop_consumer_lag_messages",
                                  "records not yet read on a partition this worker owns",
                                  "topic", "partition")
        self.unreachable = Gauge("closedloop_kafka_unreachable_seconds",
                                 "seconds since the Kafka cluster last answered this worker, "
                                 "while it does not answer; 0 while it does", registry=reg)
        self.turnaround = Histogram("closedloop_lab_turnaround_seconds",
                                    "event time from a tube's collection to its lab records",
                                    ["stage"], buckets=TURNAROUND_BUCKETS, registry=reg)
        # by topic only: a source (site, lab, worker) or a person is never a label (§2)
        self.entry_lag = Histogram("closedloop_entry_lag_seconds",
                                   "entry lag (receipt - occurred_at) of records whose receipt "
                                   "is their own", ["topic"], buckets=ENTRY_LAG_BUCKETS,
                                   registry=reg)
        self.entries_late = counter("closedloop_entries_late_total",
                                    "records entered later than their topic's entry_within",
                                    "topic")
        self.latency = Histogram("closedloop_event_to_alert_latency_seconds",
                                 "wall time from the triggering record's arrival to the alert's "
                                 "send", buckets=LATENCY_BUCKETS, registry=reg)
        for action in ACTIONS:  # closed sets: a series from the start, at 0
            self.actions.labels(action)
        for reason in ENGINE_REASONS:
            self.actions_ignored.labels(reason)
        for role in ("driver", "passenger"):
            for outcome in ENTRY_OUTCOMES:
                self.entries.labels(role, outcome)
        for lab_stage in LAB_STAGES:
            self.turnaround.labels(lab_stage)
        for topic in sorted(policy.entry_within):
            self.entry_lag.labels(topic)
            self.entries_late.labels(topic)
        self.tallies = {stage: KeyTally(policy, stage) for stage in TALLIED_STAGES}
        self.findings = FindingTally(policy)
        self._findings_shown: set[tuple[str, str]] = set()
        self._kinds_shown: set[str] = set()
        self._regimens = sorted({regimen.mode for regimen in policy.regimens.values()})

    # -- fed by the agents --------------------------------------------------------------------

    def assigned(self, stage: str, partition: int, items: Iterable[tuple[str, object]]
                 ) -> None:
        if stage in self.tallies:
            self.tallies[stage].load(partition, items)
        elif stage == SUPERVISION_STAGE:
            self.findings.load(partition, items)

    def revoked(self, stage: str, partition: int) -> None:
        if stage in self.tallies:
            self.tallies[stage].drop(partition)
        elif stage == SUPERVISION_STAGE:
            self.findings.drop(partition)

    def touched(self, stage: str, partition: int, keys: Iterable[str],
                get: Callable[[str], object]) -> None:
        """Keys whose state a message may have changed (``RecordEffects.touched``)."""
        if stage == SUPERVISION_STAGE:
            for key in keys:
                self.findings.update(partition, key, get(key))
            return
        tally = self.tallies.get(stage)
        if tally is None:
            return
        for key in keys:
            for lab_stage, seconds in tally.update(partition, key, get(key)).items():
                self.turnaround.labels(lab_stage).observe(seconds)

    def round_reported(self, report: RoundReport) -> None:
        """A testing round's report was published: its coverage per district from now on.

        ``round_id`` is a label: rounds are a few a week, each with a handful of districts;
        a round's series are replaced by each of its reports and stay after its final one.
        """
        for row in report.rows:
            covered, missing = round_coverage(row)
            if covered is not None:
                self.coverage.labels(report.round_id, row.district).set(covered)
            self.round_missed.labels(report.round_id, row.district).set(missing)

    def entered(self, topic: str, lag: int, late: bool) -> None:
        """A record of known entry lag (``lag`` seconds) was read; ``late``: longer than its
        topic's entry_within (agents/entry.py decides)."""
        self.entry_lag.labels(topic).observe(lag)
        if late:
            self.entries_late.labels(topic).inc()

    def alert_sent(self, kind: str, arrived: float | None) -> None:
        """An alert handed to the producer; ``arrived`` is its trigger's monotonic arrival."""
        self.raised.labels(kind).inc()
        if arrived is not None:
            self.latency.observe(max(0.0, time.monotonic() - arrived))

    # -- computed when scraped ----------------------------------------------------------------

    def refresh(self, now: int, clocks: Mapping[str, Mapping[int, int]],
                lags: Iterable[tuple[str, int, int]], unreachable: float = 0.0) -> None:
        """Set the scrape-time gauges.

        ``clocks``: stage → partition → effective clock of the partitions this worker owns;
        ``lags``: (topic short name, partition, records unread). Series of partitions that
        moved away are removed, so a partition is reported by its owner only.
        ``unreachable``: seconds the cluster has not answered (0 while it does).
        """
        self.unreachable.set(unreachable)
        kinds: Counter[str] = Counter()
        for tally in self.tallies.values():
            kinds.update(tally.kinds)
        for kind in self._kinds_shown - set(kinds):
            self.open_requirements.labels(kind).set(0)
        for kind, count in kinds.items():
            self.open_requirements.labels(kind).set(count)
        self._kinds_shown |= set(kinds)
        findings = self.findings.counts
        for district, severity in self._findings_shown - set(findings):
            self.findings_open.labels(district, severity).set(0)
        for (district, severity), count in findings.items():
            self.findings_open.labels(district, severity).set(count)
        self._findings_shown |= set(findings)
        controlled = self.tallies["person"].under_control(clocks.get("person", {}))
        for regimen in sorted(set(self._regimens) | set(controlled)):
            self.under_control.labels(regimen).set(controlled.get(regimen, 0))
        self.watermark_lag.clear()
        for stage, partitions in clocks.items():
            for partition, clock in partitions.items():
                if clock != MIN_EPOCH:
                    self.watermark_lag.labels(stage, str(partition)).set(now - clock)
        self.consumer_lag.clear()
        for topic, partition, lag in lags:
            self.consumer_lag.labels(topic, str(partition)).set(lag)


def scrape_lags(partitions: Iterable[tuple[str, int]], highwater: Callable[[str, int], int | None],
                read: Callable[[str, int], int | None],
                committed: Callable[[str, int], int | None]) -> list[tuple[str, int, int]]:
    """(topic, partition, lag) of each known partition, from the consumer's bookkeeping."""
    lags = []
    for topic, partition in partitions:
        lag = consumer_lag(highwater(topic, partition), read(topic, partition),
                           committed(topic, partition))
        if lag is not None:
            lags.append((topic, partition, lag))
    return lags

