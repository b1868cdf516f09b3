"""The topology is one value: who reads what, clock marks, ticks, routes and topic settings
are derived from its stages and topics, and a new loop is one more stage and its topics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from closedloop.agents.sources import Entered
from closedloop.agents.state import Contribution, LabTold, ReportState, RoundPart, Sampled
from closedloop.schemas.events import KEY_FIELD
from closedloop.streams.engine import topology
from closedloop.streams.engine.topology import (
    PERSON,
    REPORT,
    TOPOLOGY,
    Stage,
    Topic,
    Topology,
    Wiring,
    partition_of,
)
from closedloop.streams.kafka.topics import topic_specs


class TestTheTopology:
    def test_every_input_of_the_contract_is_a_topic_keyed_as_the_contract_says(self) -> None:
        assert set(TOPOLOGY.inputs) == set(KEY_FIELD)
        assert all(TOPOLOGY.topic[name].key == key for name, key in KEY_FIELD.items())

    def test_each_input_a_stage_reads_has_one_owner_and_an_action_reaches_every_keyed_stage(
            self) -> None:
        assert TOPOLOGY.owner["sampling"] == "tube" and TOPOLOGY.owner["travel"] == "person"
        assert TOPOLOGY.owner["area"] == TOPOLOGY.owner["round"] == "tube"
        assert TOPOLOGY.owner["inspection"] == "supervision"
        # an alert's subject is a tube, a person, a unit, a source or a lab: its action
        # reaches each stage
        assert TOPOLOGY.readers["action"] == ("tube", "person", "supervision", "entry")
        assert [stage.name for stage in TOPOLOGY.appliers["action"]] == [
            "tube", "person", "supervision", "entry"]
        assert TOPOLOGY.appliers["area"] == TOPOLOGY.appliers["round"] == ()

    def test_marks_go_downstream_and_ticks_to_every_stage_with_a_clock_of_its_own(
            self) -> None:
        assert TOPOLOGY.marks == {"tube": ("person-tests", "entry-parts", "report-parts"),
                                  "person": ("entry-parts", "report-parts"),
                                  "supervision": ("report-parts",), "entry": (),
                                  "report": ()}
        # the data-entry stage's clock is its upstream's: it owns no input
        assert TOPOLOGY.ticks == ("tube-ticks", "person-tests", "unit-ticks")
        assert TOPOLOGY.upstream_partitions("report", 4) == 12
        assert TOPOLOGY.upstream_partitions("entry", 4) == 8

    def test_items_travel_on_the_internal_topic_of_the_stage_that_receives_them(self) -> None:
        assert TOPOLOGY.route[Sampled] == "person-tests"
        assert TOPOLOGY.route[Contribution] == TOPOLOGY.route[RoundPart] == "report-parts"
        assert TOPOLOGY.route[Entered] == TOPOLOGY.route[LabTold] == "entry-parts"
        assert TOPOLOGY.shared_to == ("person-tests",)
        assert TOPOLOGY.carried == ("person-tests", "report-parts", "entry-parts")

    def test_the_topics_a_worker_declares_are_the_topologys_with_their_compaction(
            self) -> None:
        specs = {spec.name: spec for spec in topic_specs("p", 3, 1)}
        assert specs.keys() == TOPOLOGY.topic.keys()
        compacted = {name for name, spec in specs.items()
                     if spec.config["cleanup.policy"] == "compact"}
        assert compacted == {"cohort", "population", "person-status", "unit-status"}
        assert specs["tube-ticks"].config["retention.ms"] == str(7 * 86_400_000)


class TestANewLoop:
    def test_a_stage_and_its_topics_are_one_entry_each(self) -> None:
        # given a stage keyed by source reading its own input, marked by the person stage
        source = Stage("source", ReportState, {}, {})
        grown = Topology(
            topics=(*TOPOLOGY.topics,
                    Topic("audit", "input", "source_id", retention_days=30),
                    Topic("source-parts", "internal", "source_id", retention_days=7)),
            stages=(*TOPOLOGY.stages,
                    Wiring(source, "source-parts", owns=("audit",), upstream=("person",))))
        # then everything else follows
        assert grown.readers["audit"] == ("source",)
        assert grown.owner["audit"] == "source"
        assert grown.marks["person"] == ("entry-parts", "report-parts", "source-parts")
        assert grown.ticks == ("tube-ticks", "person-tests", "unit-ticks", "source-parts")
        assert "audit" in grown.inputs and "source-parts" in grown.internal

    def test_a_stage_reading_a_topic_nobody_declared_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unit-parts"):
            Topology(topics=TOPOLOGY.topics, stages=(
                *TOPOLOGY.stages, Wiring(replace(REPORT, name="unit"), "unit-parts")))

    def test_an_upstream_stage_must_come_first(self) -> None:
        stages = list(TOPOLOGY.stages)
        stages[1] = replace(stages[1], upstream=("report",))  # the person stage
        with pytest.raises(ValueError, match="upstream"):
            Topology(topics=TOPOLOGY.topics, stages=tuple(stages))

    def test_a_stage_whose_internal_topic_is_an_input_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not an internal topic"):
            Topology(topics=TOPOLOGY.topics, stages=(
                *TOPOLOGY.stages, Wiring(replace(PERSON, name="other"), "travel")))


# Kafka's own murmur2 of these keys (its clients' UtilsTest), as a signed 32-bit int: a
# producer in any language puts a key where the Java client does
JAVA_MURMUR2 = {"21": -973932308, "foobar": -790332482, "abc": 479470107,
                "a-little-bit-long-string": -985981536,
                "a-little-bit-longer-string": -1486304829,
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971}


@pytest.mark.parametrize("partitions", [1, 3, 4, 12])
def test_a_key_goes_to_the_partition_the_java_client_gives_it(partitions: int) -> None:
    for key, java in JAVA_MURMUR2.items():
        assert partition_of(key, partitions) == (java & 0x7FFFFFFF) % partitions


def test_remembered_partitions_start_anew_when_full_and_stay_right(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topology, "PLACED", 4)
    monkeypatch.setattr(topology, "_PLACED", {})
    first = [partition_of(key, 12) for key in JAVA_MURMUR2]
    assert all(len(placed) <= 4 for placed in topology._PLACED.values())
    assert [partition_of(key, 12) for key in JAVA_MURMUR2] == first
    assert first == [(java & 0x7FFFFFFF) % 12 for java in JAVA_MURMUR2.values()]
