"""The worker's metrics from keyed state (streams/kafka/metrics.py), without a broker.

States come from the real stages through a StageRunner, so the helpers are checked against
the layout the rules really write, not a hand-made imitation of it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from helpers import T0, at, epoch, followup, lab, policy, sampling, travel
from prometheus_client import CollectorRegistry

from closedloop.agents import supervision
from closedloop.agents.state import TubeState
from closedloop.schemas.decode import Rejection, decode_event
from closedloop.streams.engine.clock import MIN_EPOCH
from closedloop.streams.engine.stage_runner import StageRunner
from closedloop.streams.engine.topology import PERSON, TUBE
from closedloop.streams.kafka.metrics import (
    KeyTally,
    WorkerMetrics,
    consumer_lag,
    requirement_kinds,
    turnarounds,
)

HOUR = 3600


class Feed:
    """One partition of a stage: applies envelopes in order, as the worker's agent does."""

    def __init__(self, stage: Any) -> None:
        self.table: dict[str, Any] = {}
        self.run = StageRunner(stage, policy(), self.table, upstream=0, mark_every=10**9)
        self.offset = 0

    def apply(self, key: str, envelope: dict[str, Any]) -> set[str]:
        topic = envelope["topic"]
        event = decode_event(topic, orjson.dumps(envelope["value"]))
        assert not isinstance(event, Rejection), event
        self.offset += 1
        fx = self.run.on_input(0, key, event, int(event.occurred_at.timestamp()),
                               f"{topic}:{event.event_id}", topic=topic, offset=self.offset)
        return fx.touched


def test_requirement_kinds_count_names_by_prefix_without_gc() -> None:
    st = TubeState(req={"lab:transport": 1, "lab:result": 2, "orphan": 3}, gc_due=4)
    assert requirement_kinds(st) == {"lab": 2, "orphan": 1}
    assert requirement_kinds(None) == {}


def test_consumer_lag_counts_from_the_next_offset_to_read() -> None:
    assert consumer_lag(highwater=10, read=4, committed=2) == 5  # offsets 5..9
    assert consumer_lag(highwater=10, read=None, committed=7) == 3  # nothing read yet
    assert consumer_lag(highwater=10, read=9, committed=None) == 0
    assert consumer_lag(highwater=None, read=4, committed=2) is None  # not fetched yet
    assert consumer_lag(highwater=10, read=None, committed=None) is None
    assert consumer_lag(highwater=0, read=None, committed=None) == 0  # an empty partition


def test_a_tubes_turnaround_is_observed_once_per_stage_as_its_records_arrive() -> None:
    feed = Feed(TUBE)
    tally = KeyTally(policy(), "tube")
    observed: list[tuple[str, int]] = []

    def apply(envelope: dict[str, Any]) -> None:
        for key in feed.apply("tb-1", envelope):
            observed.extend(tally.update(0, key, feed.table.get(key)).items())

    apply(sampling("p:000000000001", "tb-1", T0))
    assert tally.kinds == {"lab": 2}  # transport and result SLAs open
    apply(lab("tb-1", at(T0, hours=3)))
    apply(lab("tb-1", at(T0, hours=10), "negative"))
    apply(lab("tb-1", at(T0, hours=11), "negative"))  # a later report is ignored
    assert observed == [("transport", 3 * HOUR), ("result", 10 * HOUR)]


def test_a_result_before_its_sampling_is_measured_when_the_sampling_arrives() -> None:
    feed = Feed(TUBE)
    tally = KeyTally(policy(), "tube")
    feed.apply("tb-2", lab("tb-2", at(T0, hours=5), "negative"))
    assert tally.update(0, "tb-2", feed.table["tb-2"]) == {}
    assert tally.kinds == {"orphan": 1}
    feed.apply("tb-2", sampling("p:000000000002", "tb-2", T0))
    got = tally.update(0, "tb-2", feed.table["tb-2"])
    assert got == {"transport": 5 * HOUR, "result": 5 * HOUR}
    assert turnarounds(feed.table["tb-2"]) == got


def test_recovered_keys_are_counted_but_not_measured_again() -> None:
    feed = Feed(TUBE)
    feed.apply("tb-3", sampling("p:000000000003", "tb-3", T0))
    feed.apply("tb-3", lab("tb-3", at(T0, hours=2)))
    tally = KeyTally(policy(), "tube")  # another worker takes the partition over
    tally.load(0, [("tb-3", feed.table["tb-3"])])
    # received, unreported: its lab is told when it has waited lab_silent_after
    assert tally.kinds == {"lab": 2, "wait": 1}
    feed.apply("tb-3", lab("tb-3", at(T0, hours=6), "negative"))
    assert tally.update(0, "tb-3", feed.table["tb-3"]) == {"result": 6 * HOUR}
    tally.drop(0)
    assert tally.kinds == {} and tally.keys == {}


def test_loading_a_partition_tallies_what_updating_each_key_would() -> None:
    tubes, persons = Feed(TUBE), Feed(PERSON)
    tubes.apply("tb-7", sampling("p:000000000007", "tb-7", T0))  # owes its lab records
    tubes.apply("tb-7", lab("tb-7", at(T0, hours=2)))
    tubes.apply("tb-8", lab("tb-8", at(T0, hours=3), "negative"))  # an orphan, no sampling
    tubes.apply("tb-9", sampling("p:000000000009", "tb-9", T0))
    tubes.apply("tb-9", lab("tb-9", at(T0, hours=2)))
    tubes.apply("tb-9", lab("tb-9", at(T0, hours=4), "negative"))  # done: turnarounds only
    person = "p:000000000011"
    persons.apply(person, travel(person, T0, risk="medium"))
    persons.apply(person, followup(person, at(T0, hours=1), "located"))
    persons.apply("p:000000000012", sampling("p:000000000012", "tb-12", T0))
    for stage, feed in (("tube", tubes), ("person", persons)):
        items = [*feed.table.items(), ("gone", None), ("idle", TubeState(gc_due=5))]
        loaded, updated = KeyTally(policy(), stage), KeyTally(policy(), stage)
        loaded.load(0, items)
        for key, st in items:
            updated.update(0, key, st, observe=False)
        assert loaded.keys == updated.keys and loaded.kinds == updated.kinds
        assert loaded.keys[0], stage  # something was tallied
    assert loaded.under_control({0: epoch(at(T0, hours=2))}) == {"home_quarantine": 1}


def test_counts_follow_a_key_whose_state_is_forgotten() -> None:
    tally = KeyTally(policy(), "tube")
    tally.update(0, "tb-4", TubeState(req={"orphan": 1}, gc_due=2))
    tally.update(1, "tb-5", TubeState(req={"orphan": 1}))
    assert tally.kinds == {"orphan": 2}
    tally.update(0, "tb-4", None)  # deleted from the table
    assert tally.kinds == {"orphan": 1}


def test_a_person_is_under_control_from_located_until_the_regimens_end() -> None:
    person = "p:000000000009"
    feed = Feed(PERSON)
    tally = KeyTally(policy(), "person")
    feed.apply(person, travel(person, T0, risk="medium"))
    tally.update(0, person, feed.table[person])
    located = at(T0, hours=1)
    assert tally.under_control({0: epoch(located)}) == {}  # pushed, not located yet
    feed.apply(person, followup(person, located, "located"))
    tally.update(0, person, feed.table[person])
    assert tally.under_control({0: epoch(located) - 1}) == {}
    assert tally.under_control({0: epoch(located)}) == {"home_quarantine": 1}
    assert tally.under_control({0: MIN_EPOCH}) == {}  # the partition's clock is unknown
    loops = feed.table[person].loops
    assert loops is not None and loops.push is not None
    ends = loops.push.ends_at
    assert tally.under_control({0: ends - 1}) == {"home_quarantine": 1}
    assert tally.under_control({0: ends}) == {}
    assert {"unlocated", "test"} <= set(tally.kinds)  # re-checked when due, open until then


def test_refresh_sets_gauges_and_drops_series_of_partitions_gone() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(policy(), registry)
    metrics.assigned("tube", 0, [("tb-6", TubeState(req={"orphan": 1}))])
    metrics.refresh(1000, {"tube": {0: 400, 1: MIN_EPOCH}}, [("sampling", 0, 7)])

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("closedloop_open_requirements", kind="orphan") == 1
    assert value("closedloop_watermark_lag_seconds", stage="tube", partition="0") == 600
    assert value("closedloop_watermark_lag_seconds", stage="tube", partition="1") is None
    assert value("closedloop_consumer_lag_messages", topic="sampling", partition="0") == 7
    assert value("closedloop_persons_under_control", regimen="home_quarantine") == 0
    assert value("closedloop_alert_actions_total", action="resolve") == 0
    metrics.revoked("tube", 0)
    metrics.refresh(1000, {}, [])
    assert value("closedloop_open_requirements", kind="orphan") == 0
    assert value("closedloop_watermark_lag_seconds", stage="tube", partition="0") is None
    assert value("closedloop_consumer_lag_messages", topic="sampling", partition="0") is None


def test_an_alert_sent_counts_its_kind_and_its_latency() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(policy(), registry)
    metrics.alert_sent("positive", arrived=None)  # no arrival known: counted, not timed
    metrics.alert_sent("positive", arrived=time.monotonic())
    assert registry.get_sample_value("closedloop_alerts_raised_total", {"kind": "positive"}) == 2
    assert registry.get_sample_value("closedloop_event_to_alert_latency_seconds_count") == 1


def test_an_entry_is_observed_by_topic_and_counted_late_by_topic() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(policy(), registry)
    # every topic with an entry_within has its series from the start, at 0
    assert registry.get_sample_value("closedloop_entries_late_total", {"topic": "lab"}) == 0
    assert registry.get_sample_value("closedloop_entry_lag_seconds_count",
                                     {"topic": "clinic"}) == 0
    metrics.entered("sampling", 7200, late=False)  # exactly entry_within: on time
    metrics.entered("sampling", 7201, late=True)
    assert registry.get_sample_value("closedloop_entries_late_total",
                                     {"topic": "sampling"}) == 1
    assert registry.get_sample_value("closedloop_entry_lag_seconds_bucket",
                                     {"topic": "sampling", "le": "7200.0"}) == 1
    assert registry.get_sample_value("closedloop_entry_lag_seconds_count",
                                     {"topic": "sampling"}) == 2
    # no label but the topic, whatever the record's source
    names = {sample.name: sample.labels for metric in registry.collect()
             for sample in metric.samples if sample.name.startswith(("closedloop_entry",
                                                                   "closedloop_entries"))}
    assert names and all(set(labels) <= {"topic", "le"} for labels in names.values())


def _unit(*findings: tuple[str, str, str, str | None]) -> supervision.UnitState:
    """A unit's state with findings (finding_id, district, severity, last recheck result)."""
    st = supervision.UnitState()
    for finding_id, district, severity, result in findings:
        steps = [] if result is None else [supervision.Step("recheck", 200, result)]
        st.findings[finding_id] = supervision.Finding(
            finding_id=finding_id, at=100, category="venue_code", severity=severity,
            unit_kind="venue", district=district, steps=steps)
    return st


def test_open_findings_are_counted_by_district_and_severity_never_by_unit() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(policy(), registry)
    units = {"venue-1": _unit(("f1", "xuhui", "major", None), ("f2", "xuhui", "major", "fail"),
                              ("f3", "xuhui", "minor", "pass")),
             "site-2": _unit(("g1", "jingan", "critical", None))}
    metrics.assigned("supervision", 0, [("venue-1", units["venue-1"])])
    metrics.assigned("supervision", 1, [("site-2", units["site-2"])])
    metrics.refresh(1000, {}, [])

    def value(**labels: str) -> float | None:
        return registry.get_sample_value("closedloop_findings_open", labels)

    assert value(district="xuhui", severity="major") == 2
    assert value(district="xuhui", severity="minor") is None  # closed: no series
    assert value(district="jingan", severity="critical") == 1
    units["venue-1"].findings["f1"].steps.append(supervision.Step("recheck", 300, "pass"))
    metrics.touched("supervision", 0, ["venue-1"], units.get)
    metrics.revoked("supervision", 1)
    metrics.refresh(1000, {}, [])
    assert value(district="xuhui", severity="major") == 1
    assert value(district="jingan", severity="critical") == 0  # moved away: 0, not stale
    labels = {tuple(sorted(sample.labels)) for family in registry.collect()
              if family.name == "closedloop_findings_open" for sample in family.samples}
    assert labels == {("district", "severity")}
