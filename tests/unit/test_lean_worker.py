"""The lean worker's pure parts, without a broker: its per-partition store and changelog, and
how a batch's records are coalesced (packs, one status per person, one mark per partition).

The worker writes about one record per input event only because of these; the in-memory
bus (tests/replay) runs the same Batch in every arrival order and must still equal replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import policy

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, fire_due
from closedloop.agents.state import (
    Contribution,
    PersonState,
    ReportState,
    Sampled,
    TubeState,
    changelog_batch_decoder,
)
from closedloop.streams.engine.records import PACK_LIMIT, Batch, Record, handle_record
from closedloop.streams.engine.stage_runner import PartitionMeta, RecordEffects, meta_key, runners
from closedloop.streams.engine.store import StageStore
from closedloop.streams.engine.topology import TOPOLOGY, partition_of

N = 4


def sampled(at: int = 1_662_400_000) -> Sampled:
    return Sampled(at=at, tube="tb-1", pool=1, site="s", lat=None, lon=None, district="d")


# -- the store --------------------------------------------------------------------------------

def test_each_changed_key_is_written_once_per_batch_with_its_latest_value() -> None:
    store = StageStore(PersonState)
    store.enter(2)
    store["p:1"] = PersonState(district="a")
    store["p:1"] = PersonState(district="b")  # twice in one batch: one record
    store["p:2"] = PersonState(district="c")
    del store["p:2"]  # gone: a tombstone
    changes = sorted(store.changes())
    assert changes == [(2, b"p:1", msgspec.json.encode(PersonState(district="b"))),
                       (2, b"p:2", None)]
    assert list(store.changes()) == []  # nothing changed since


def test_keys_live_in_the_partition_that_wrote_them() -> None:
    store = StageStore(PersonState)
    store.enter(0)
    store["k"] = PersonState(district="zero")
    store.enter(1)
    assert store.get("k") is None and "k" not in store
    store["k"] = PersonState(district="one")
    assert {p for p, _, _ in store.changes()} == {0, 1}
    store.drop(0)
    assert store.keys(0) == [] and store.keys(1) == ["k"]


def test_a_partition_restored_from_its_changelog_is_what_was_written() -> None:
    writer = StageStore(TubeState)
    writer.enter(3)
    writer["tb-1"] = TubeState()
    writer["tb-2"] = TubeState()
    meta = PartitionMeta(topics={"lab": 5}, processed={"lab": 9}, marks={}, pending=[],
                         tick=0, marked=0, max_seen=5, clock=4)
    writer[meta_key(3)] = meta
    del writer["tb-2"]
    log = [(key, value) for _, key, value in writer.changes()]
    log.insert(0, (b"tb-2", msgspec.json.encode(TubeState())))  # an older value, then its tombstone
    log.append((b"tb-9", b"{not json"))  # another version's record: skipped, not fatal
    reader = StageStore(TubeState)
    assert reader.restore(3, log) == 2
    reader.enter(3)
    assert isinstance(reader.get("tb-1"), TubeState) and reader.get("tb-2") is None
    assert reader.get(meta_key(3)) == meta
    assert reader.keys(3) == ["tb-1"]


def test_a_state_changelogged_with_gc_in_req_restores_with_gc_due_and_fires_alike() -> None:
    # a person written before gc_due existed: gc among the requirements, or alone
    log = [(b"p:1", b'{"last":100,"req":{"gc":300,"followup":300,"cohort:a":300,"esc:x":300},'
                    b'"district":"d"}'),
           (b"p:2", b'{"last":100,"req":{"gc":500},"district":"d"}')]
    reader = StageStore(PersonState)
    assert reader.restore(0, log) == 2
    reader.enter(0)
    both, alone = reader.get("p:1"), reader.get("p:2")
    assert isinstance(both, PersonState) and isinstance(alone, PersonState)
    assert both.gc_due == 300 and both.req == {"followup": 300, "cohort:a": 300, "esc:x": 300}
    assert alone == PersonState(last=100, gc_due=500, district="d")
    assert msgspec.json.decode(msgspec.json.encode(alone)) == {
        "last": 100, "gc_due": 500, "district": "d"}
    # gc keeps its place among the lapses at one instant: (due, name) order, as in req
    fired: list[str] = []

    def record(ctx: Context, st: PersonState, key: str, name: str, due: int) -> None:
        fired.append(name)

    handlers = dict.fromkeys(("gc", "followup", "cohort", "esc"), record)
    rules = policy()
    fire_due(Context(rules, Calendar(rules.zone, rules.daily_cutoff), 300), both, "p:1", handlers)
    assert fired == ["cohort:a", "esc:x", "followup", "gc"]
    assert both.req is None and both.gc_due is None


# -- coalescing a batch -------------------------------------------------------------------

def test_forwards_are_packed_per_target_partition_and_marks_sent_last_once() -> None:
    run = runners(policy(), N, lambda _stage, _state: {})
    batch = Batch(N)
    persons = [f"p:{i:012x}" for i in range(40)]
    for number, person in enumerate(persons):
        fx = RecordEffects(forwards=[(person, sampled())], mark=1_000 + number)
        batch.add("tube", 1, fx)
    records = batch.records(run)
    packs = [r for r in records if r.topic == "person-tests" and r.value
             and r.value.startswith(b'{"type":"pack"')]
    marks = [r for r in records if r.value and b'"type":"mark"' in r.value]
    assert {r.partition for r in packs} == {partition_of(p, N) for p in persons}
    assert len(packs) == len({partition_of(p, N) for p in persons})  # one per partition
    # once to every partition of each downstream stage: person, entry and report
    assert [msgspec.json.decode(m.value)["at"] for m in marks] == [1_039] * (
        len(TOPOLOGY.marks["tube"]) * N)
    assert len(TOPOLOGY.marks["tube"]) == 3
    assert records.index(marks[0]) > max(records.index(p) for p in packs)


def test_a_pack_is_cut_into_records_the_broker_takes() -> None:
    run = runners(policy(), 1, lambda _stage, _state: {})
    batch = Batch(1)
    batch.add("tube", 0, RecordEffects(forwards=[(f"p:{i:012x}", sampled())
                                           for i in range(PACK_LIMIT * 2 + 1)]))
    packs = [r for r in batch.records(run) if r.topic == "person-tests"]
    assert len(packs) == 3 and all(len(r.value or b"") < 1_000_000 for r in packs)


@pytest.mark.parametrize("items", [1, 2, PACK_LIMIT, PACK_LIMIT + 1, PACK_LIMIT * 2])
def test_a_pack_written_as_its_items_are_made_is_the_packs_encoding(items: int) -> None:
    from closedloop.agents.state import Contribution
    from closedloop.streams.engine.records import _Pack

    run = runners(policy(), 1, lambda _stage, _state: {})
    batch = Batch(1)
    made: list[tuple[str, Any]] = [
        (f"p:{i:012x}", sampled()) if i % 3 else (f"d{i}", Contribution(f"d{i}", i, "x", -1))
        for i in range(items)]
    for key, item in made:
        if isinstance(item, Contribution):
            batch.add("tube", 0, RecordEffects(contributions=[item]))
        else:
            batch.add("tube", 0, RecordEffects(forwards=[(key, item)]))
    packs = [r.value for r in batch.records(run) if r.topic in ("person-tests", "report-parts")]
    forwards = [pair for pair in made if not isinstance(pair[1], Contribution)]
    parts = [pair for pair in made if isinstance(pair[1], Contribution)]
    expected = [msgspec.json.encode(_Pack(chunk[i:i + PACK_LIMIT]))
                for chunk in (forwards, parts) for i in range(0, len(chunk), PACK_LIMIT)]
    assert sorted(packs) == sorted(expected)  # type: ignore[type-var]


def test_a_batchs_event_ids_of_one_hour_fit_in_one_producer_batch() -> None:
    from closedloop.streams.engine.dedup import DIGEST
    from closedloop.streams.engine.stage_runner import DedupChunk, dedup_key
    from closedloop.streams.kafka.loop import MAX_BATCH_BYTES, MAX_RECORDS

    # every record of a batch an input of one partition, all in one hour
    row = msgspec.json.encode(DedupChunk(500_000, bytes(DIGEST) * MAX_RECORDS))
    key = dedup_key(500_000, 9_999).encode()
    assert len(row) + len(key) + 100 < MAX_BATCH_BYTES  # 100: the record's own framing


def test_a_pack_of_contributions_counts_once_however_often_it_is_delivered() -> None:
    tables: dict[str, dict[str, object]] = {}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))
    batch = Batch(1)
    batch.add("person", 0, RecordEffects(contributions=[
        Contribution(district="d", at=1_662_400_000, field="pushed", d=1),
        Contribution(district="d", at=1_662_400_000, field="pushed", d=1)]))
    (pack,) = [r for r in batch.records(run) if r.topic == "report-parts"]
    record = Record("report-parts", 0, 7, pack.key, pack.value or b"")
    first = handle_record("report", run["report"], record, policy())
    again = handle_record("report", run["report"], record, policy())  # redelivered
    assert not first.effects.duplicate and again.effects.duplicate
    report = tables["report"]["d"]
    assert isinstance(report, ReportState) and report.days is not None
    assert sum(day.get("pushed", 0) for day in report.days.values()) == 2


def test_person_status_is_published_once_per_person_per_batch() -> None:
    tables: dict[str, dict[str, object]] = {}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))
    tables.setdefault("person", {})["p:1"] = PersonState(district="d")
    batch = Batch(1)
    for _ in range(3):
        batch.add("person", 0, RecordEffects(touched={"p:1"}))
    statuses = [r for r in batch.records(run) if r.topic == "person-status"]
    assert [r.key for r in statuses] == [b"p:1"]


@pytest.mark.parametrize("gone", [True, False])
def test_a_forgotten_person_gets_a_tombstone_status(gone: bool) -> None:
    tables: dict[str, dict[str, object]] = {"person": {} if gone else {"p:1": PersonState()}}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))
    batch = Batch(1)
    batch.add("person", 0, RecordEffects(touched={"p:1"}))
    (status,) = [r for r in batch.records(run) if r.topic == "person-status"]
    assert (status.value is None) is gone


def test_a_status_that_changed_only_in_updated_at_is_not_published_again() -> None:
    tables: dict[str, dict[str, object]] = {}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))
    tables.setdefault("person", {})["p:1"] = PersonState(district="d")
    seen: dict[int, dict[str, int]] = {}

    def statuses() -> list[bytes | None]:
        batch = Batch(1)
        batch.add("person", 0, RecordEffects(touched={"p:1"}))
        return [r.value for r in batch.records(run, None,
                                               lambda _stage, p: seen.setdefault(p, {}))
                if r.topic == "person-status"]

    assert len(statuses()) == 1
    assert statuses() == []  # touched again, nothing but the clock moved
    tables["person"]["p:1"] = PersonState(district="e")  # a real change goes out
    (changed,) = statuses()
    assert changed is not None and b'"district":"e"' in changed


def test_persons_whose_statuses_differ_only_in_their_id_keep_one_digest_object() -> None:
    """A worker keeps a digest per person it published; a pool's members are told alike, and
    their equal digests must not cost an int each."""
    tables: dict[str, dict[str, object]] = {"person": {
        "p:1": PersonState(district="d"), "p:2": PersonState(district="d"),
        "p:3": PersonState(district="e")}}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))
    seen: dict[int, dict[str, int]] = {}
    batch = Batch(1)
    batch.add("person", 0, RecordEffects(touched={"p:1", "p:2", "p:3"}))
    published = [r.key for r in batch.records(run, None,
                                              lambda _stage, p: seen.setdefault(p, {}))
                 if r.topic == "person-status"]
    assert published == [b"p:1", b"p:2", b"p:3"]  # each person's status still goes out
    digests = seen[0]
    assert digests["p:1"] is digests["p:2"] and digests["p:1"] != digests["p:3"]


def test_a_status_the_rules_fail_on_is_skipped_and_the_batch_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from closedloop.agents import person as person_rules
    from closedloop.streams.engine.topology import PERSON

    tables: dict[str, dict[str, object]] = {
        "person": {"p:1": PersonState(district="d"), "p:2": PersonState(district="e")}}
    run = runners(policy(), 1, lambda stage, _state: tables.setdefault(stage, {}))

    def failing(ctx: object, person_id: str, st: PersonState) -> object:
        if person_id == "p:1":
            raise ValueError("a bug")
        return person_rules.person_status(ctx, person_id, st)  # type: ignore[arg-type]

    monkeypatch.setattr(run["person"], "stage", replace(PERSON, status=failing))
    batch = Batch(1)
    batch.add("person", 0, RecordEffects(touched={"p:1", "p:2"}, alerts=[]))
    assert [r.key for r in batch.records(run) if r.topic == "person-status"] \
        == [b"p:2"]


def test_a_record_without_a_partition_goes_where_its_key_would() -> None:
    from closedloop.streams.engine.records import Outgoing
    from closedloop.streams.kafka.loop import target_partition

    keys = [f"p:{i:012x}" for i in range(50)]
    placed = {target_partition(Outgoing("alerts", k.encode(), b"{}"), N, 0) for k in keys}
    assert placed == {partition_of(k, N) for k in keys} and len(placed) > 1
    assert target_partition(Outgoing("person-tests", None, b"{}", 3), N, 0) == 3
    assert {target_partition(Outgoing("deadletter", None, b"{}"), N, n)
            for n in range(N)} == set(range(N))  # keyless: spread, not all on one


# -- the consume loop -------------------------------------------------------------------------

def test_a_long_batch_lets_the_event_loop_run_between_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's heartbeat is a task on the same event loop: a batch of many records
    from one partition must yield to it before the whole batch is applied."""
    import asyncio
    from types import SimpleNamespace

    from closedloop.streams.kafka import loop as loop_module
    from closedloop.streams.kafka.settings import KafkaSettings

    settings = KafkaSettings.from_env(prefix="unit", partitions=N)
    worker = loop_module.WorkerLoop(settings, policy(), clock="event", app_id="unit",
                                    data_dir=str(tmp_path), telemetry=None)
    worker.owned = {0}
    applied: list[int] = []
    monkeypatch.setattr(worker, "_apply", lambda stage, name, topic, partition, messages,
                        out, arrived: applied.extend(m.offset for m in messages))

    async def sent(out: Batch, offsets: dict, *_: object) -> None:
        sent_offsets.update(offsets)

    sent_offsets: dict = {}
    monkeypatch.setattr(worker, "_send", sent)
    records = 3 * loop_module.YIELD_EVERY + 1
    from aiokafka.structs import TopicPartition

    tp = TopicPartition(worker.address["sampling"], 0)
    messages = [SimpleNamespace(offset=n) for n in range(records)]
    seen_mid_batch: list[int] = []

    async def heartbeat() -> None:
        await asyncio.sleep(0)
        seen_mid_batch.append(len(applied))

    async def main() -> None:
        beat = asyncio.ensure_future(heartbeat())
        await worker._batch({tp: messages}, 0.0)
        await beat

    asyncio.run(main())
    stages = len(loop_module.TOPOLOGY.readers["sampling"])
    assert sorted(set(applied)) == list(range(records))  # every record, each stage once
    assert len(applied) == stages * records
    assert seen_mid_batch and 0 < seen_mid_batch[0] < len(applied)
    assert sent_offsets == {tp: records}


def test_a_batch_lets_the_records_it_applied_go_before_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's statuses and changelog are made at its end; the records it applied by then
    must not be held beside them (20,000 records, ~10 MB, on a catch-up)."""
    import asyncio
    import weakref

    from aiokafka.structs import TopicPartition

    from closedloop.streams.kafka import loop as loop_module
    from closedloop.streams.kafka.settings import KafkaSettings

    class Message:
        def __init__(self, offset: int) -> None:
            self.offset = offset

    worker = loop_module.WorkerLoop(KafkaSettings.from_env(prefix="unit", partitions=N),
                                    policy(), clock="event", app_id="unit",
                                    data_dir=str(tmp_path), telemetry=None)
    worker.owned = {0}
    tp = TopicPartition(worker.address["sampling"], 0)
    records = 2 * loop_module.YIELD_EVERY + 1
    messages = [Message(n) for n in range(records)]
    alive = [weakref.ref(message) for message in messages]
    monkeypatch.setattr(worker, "_apply", lambda *_: None)
    at_end: list[int] = []
    sent_offsets: dict[TopicPartition, int] = {}

    async def sent(out: Batch, offsets: dict[TopicPartition, int], *_: object) -> None:
        at_end.append(sum(ref() is not None for ref in alive))
        sent_offsets.update(offsets)

    monkeypatch.setattr(worker, "_send", sent)
    batch = {tp: messages}
    del messages
    asyncio.run(worker._batch(batch, 0.0))
    assert at_end == [0]  # none left when the batch's outputs are made
    assert sent_offsets == {tp: records}  # and its offsets still commit past the last


def test_a_shared_record_sent_twice_is_broadcast_once() -> None:
    import orjson
    from helpers import T0, area

    run = runners(policy(), N, lambda stage, state: StageStore(state))
    tube = run["tube"]
    tube.table.enter(1)  # type: ignore[union-attr]
    value = orjson.dumps(area("cn-110105", T0, level="high")["value"])
    first = handle_record("tube", tube, Record("area", 1, 0, b"cn-110105", value), policy())
    again = handle_record("tube", tube, Record("area", 1, 1, b"cn-110105", value), policy())
    assert len(first.effects.broadcasts) == 1 and not first.effects.duplicate
    assert again.effects.broadcasts == [] and again.effects.duplicate and again.consumed


def test_a_partition_reads_alike_in_one_call_or_record_by_record() -> None:
    writer = StageStore(TubeState)
    writer.enter(0)
    for n in range(50):
        writer[f"tb-{n}"] = TubeState(first=n, recv=n + 5, req={"lab": n} if n % 3 else None,
                                      gc_due=n + 100)
    log = [(key, value) for _, key, value in writer.changes()]
    _, decode = changelog_batch_decoder(TubeState)
    assert decode(b"[" + b",".join(v for _, v in log if v) + b"]")  # read in one call
    at_once, one_by_one = StageStore(TubeState), StageStore(TubeState)
    at_once.restore(0, log)
    one_by_one.restore(0, [*log, (b"tb-x", b"{not json")])  # a record read alone: all are
    assert at_once.parts[0] == one_by_one.parts[0] and len(at_once.parts[0]) == 50
    two_in_one = StageStore(TubeState)  # a damaged record that would read as two states
    two_in_one.restore(0, [*log, (b"tb-y", b'{"gc_due": 1},{"gc_due": 2}')])
    assert two_in_one.parts[0] == at_once.parts[0]


def test_states_in_an_older_shape_are_told_apart_and_a_bad_array_is_none() -> None:
    person_older, _ = changelog_batch_decoder(PersonState)
    assert person_older(b'{"last": 1, "push": {"risk": "high"}}')  # a loop written flat
    tube_older, tubes = changelog_batch_decoder(TubeState)
    assert tube_older(b'{"gc_due": 5, "ids": {"lab:lb-1": 1}}')  # its own event ids
    assert not tube_older(b'{"gc_due": 5}') and not person_older(b'{"last": 1}')
    assert tubes(b'[{"gc_due": 5}, {not json]') is None
    got = tubes(b'[{"gc_due": 5}, {"req": {"gc": 7, "lab": 1}}]')
    assert got is not None and [(t.gc_due, t.req) for t in got] == [(5, None), (7, {"lab": 1})]
