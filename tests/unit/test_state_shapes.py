"""States changelogged (or snapshotted) in an older shape read back into this version's form
and behave as if they had been made by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from helpers import T0, at, epoch, lab, policy, sampling

from closedloop.agents import tubes
from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context
from closedloop.agents.state import (
    Keyed,
    PersonLoops,
    PersonState,
    Sampled,
    Site,
    TubeState,
    changelog_batch_decoder,
    changelog_decoder,
    changelog_exact_decoder,
)
from closedloop.schemas.events import Lab, Sampling
from closedloop.streams.engine.store import StageStore
from closedloop.streams.engine.topology import PERSON
from closedloop.streams.kafka.snapshot import Snapshots, read, write

TOPIC_ID = "tid-changelog"


def _context(clock: int) -> Context:
    rules = policy()
    return Context(rules, Calendar(rules.zone, rules.daily_cutoff), clock)


def _event(envelope: dict[str, Any], kind: type[Any]) -> Any:
    return msgspec.json.decode(orjson.dumps(envelope["value"]), type=kind)


def _pooled_tube() -> TubeState:
    """A 3-in-1 tube two members were swabbed into, as this version's rules make it."""
    st = TubeState()
    for person, minutes in (("person-b", 10), ("person-a", 20)):
        swab = sampling(person, "tube-0001", at(T0, minutes=minutes), pool_size=3)
        event = _event(swab, Sampling)
        assert tubes.on_sampling(_context(0), st, "tube-0001", event) is None
    return st


def _as_written_before(st: TubeState) -> bytes:
    """``st``'s changelog record as a version with a dict of members wrote it."""
    fields = msgspec.json.decode(msgspec.json.encode(st))
    persons, swabbed = fields.pop("persons"), fields.pop("swabbed")
    fields["members"] = dict(zip(persons, swabbed, strict=True))
    return msgspec.json.encode(fields)


def _restored(records: list[tuple[bytes, bytes]]) -> TubeState:
    store = StageStore(TubeState)
    store.restore(0, records)
    store.enter(0)
    st = store.get("tube-0001")
    assert isinstance(st, TubeState)
    return st


def test_a_tube_changelogged_with_a_dict_of_members_reads_into_tuples() -> None:
    made = _pooled_tube()
    assert made.persons == ("person-b", "person-a") and made.swabbed is not None
    old = _as_written_before(made)
    assert b'"members":{"person-b":' in old and b'"persons"' not in old
    restored = _restored([(b"tube-0001", old)])
    assert restored == made
    assert restored.persons == ("person-b", "person-a")  # arrival order kept


def test_a_tube_read_from_the_old_shape_behaves_as_the_new_one() -> None:
    made = _pooled_tube()
    restored = _restored([(b"tube-0001", _as_written_before(made))])
    report = _event(lab("tube-0001", at(T0, hours=3), "positive"), Lab)
    outs: list[tuple[list[tuple[str, object]], list[object], TubeState]] = []
    for st in (made, restored):
        ctx = _context(0)
        tubes.on_lab(ctx, st, "tube-0001", report)
        late = _event(sampling("person-c", "tube-0001", at(T0, minutes=30), pool_size=3), Sampling)
        assert tubes.on_sampling(ctx, st, "tube-0001", late) is None
        outs.append((ctx.out.forwards, ctx.out.alerts, st))
    assert outs[0] == outs[1]
    # each member is told its result and asked for a retest, the late one after its swab
    assert [(person, type(msg).__name__) for person, msg in outs[0][0]] == [
        ("person-a", "Result"), ("person-a", "Retest"), ("person-b", "Result"),
        ("person-b", "Retest"), ("person-c", "Sampled"), ("person-c", "Result"),
        ("person-c", "Retest")]


def _swabbed_person() -> PersonState:
    """A person swabbed twice, as this version's rules keep it (its samples' sites shared)."""
    rules = policy()
    ctx = Context(rules, Calendar(rules.zone, rules.daily_cutoff), epoch(T0))
    table: dict[str, PersonState] = {}
    for tube, site, hours in (("tube-0001", "site:a-01", 0), ("tube-0002", "site:b-02", 5)):
        PERSON.apply(ctx, table, "person-a", Sampled(
            at=epoch(T0) + hours * 3600, tube=tube, pool=1, site=site, lat=31.2, lon=121.4,
            district="district-a"), fire=False)
    return table["person-a"]


def _with_places_inline(st: PersonState, **flat: object) -> bytes:
    """``st``'s changelog record as a version with each sample's place inline wrote it
    (``flat``: loop fields at the top level, as before the loops were kept apart)."""
    fields = msgspec.json.decode(msgspec.json.encode(st))
    fields["samples"] = [[at, tube, pool, *place] for at, tube, pool, place in fields["samples"]]
    fields.update(flat)
    return msgspec.json.encode(fields)


def test_a_person_changelogged_with_its_samples_places_inline_reads_into_sites() -> None:
    made = _swabbed_person()
    assert made.samples is not None and isinstance(made.samples[0].place, Site)
    old = _with_places_inline(made)
    assert b',"site:a-01",31.2,121.4,"district-a"]' in old
    older, _ = changelog_batch_decoder(PersonState)
    assert older(old) and not older(msgspec.json.encode(made))
    store = StageStore(PersonState)
    store.restore(0, [(b"person-a", old), (b"person-b", msgspec.json.encode(made))])
    assert store.parts[0]["person-a"] == made == store.parts[0]["person-b"]
    read = changelog_decoder(PersonState)(old)
    assert isinstance(read, PersonState) and read.samples is not None
    assert [s.site for s in read.samples] == ["site:a-01", "site:b-02"]
    assert read.samples[1].district == "district-a" and read.samples[1].lat == 31.2


def test_a_person_with_flat_loops_and_inline_places_reads_into_both_forms() -> None:
    made = _swabbed_person()
    read = changelog_decoder(PersonState)(
        _with_places_inline(made, id_days=["2022-09-06"]))
    assert isinstance(read, PersonState) and read.loops is not None
    assert read.loops.id_days == ["2022-09-06"]
    assert msgspec.structs.replace(read, loops=None) == made


@pytest.mark.parametrize("stage", ["tube", "person"])
def test_an_old_shape_snapshot_restores_as_its_changelog_would(tmp_path: Path,
                                                               stage: str) -> None:
    made: Keyed
    state: type[Keyed]
    if stage == "tube":
        tube = _pooled_tube()
        made, old, state = tube, _as_written_before(tube), TubeState
    else:
        person = _swabbed_person()
        made, old, state = person, _with_places_inline(person), PersonState
    topic = f"closedloop-{stage}-changelog"
    snapshots = Snapshots(tmp_path, states={topic: state}, topic_ids={topic: TOPIC_ID})
    store = StageStore(state)
    store.restore(0, [(b"key-0001", msgspec.json.encode(made))])
    snapshots.take(topic, 0, 1, store.parts[0])
    header, _ = read(snapshots.path(topic, 0))
    # written by the version before: its shapes, its schema
    write(snapshots.path(topic, 0), msgspec.structs.replace(header, schema="before"),
          [(b"key-0001", old)])
    loaded = Snapshots(tmp_path, states={topic: state},
                       topic_ids={topic: TOPIC_ID}).load(topic, 0, end=1)
    assert loaded is not None and loaded.state is None  # read as the changelog is
    restored = StageStore(state)
    assert loaded.restore(restored, 0, []) == 1
    assert restored.parts[0]["key-0001"] == made


def test_persons_of_this_shape_with_loops_read_in_one_call_as_persons() -> None:
    # given persons of this version, one with a loop whose keys an older person had on top
    plain = _swabbed_person()
    looped = _swabbed_person()
    looped.loops = PersonLoops(located=[epoch(T0)], id_days=["2022-09-06"])
    array = msgspec.json.encode([plain, looped])
    # then the exact reader takes them in one call, as this version's persons, equal
    got = changelog_exact_decoder(PersonState)(array)
    assert got is not None and [type(st) for st in got] == [PersonState, PersonState]
    assert got == [plain, looped]
    # while the search for older shapes would have sent the looped one record by record
    older, _ = changelog_batch_decoder(PersonState)
    assert older(msgspec.json.encode(looped)) and not older(msgspec.json.encode(plain))


@pytest.mark.parametrize("old", [
    pytest.param(lambda st: _with_places_inline(st), id="places-inline"),
    pytest.param(lambda st: _with_places_inline(st, id_days=["2022-09-06"]), id="flat-too"),
    pytest.param(lambda st: msgspec.json.encode({**msgspec.json.decode(msgspec.json.encode(st)),
                                                  "ids": {"sampling:ev-1": 1}}), id="own-ids"),
])
def test_an_array_holding_one_older_person_is_not_read_exactly(old: Any) -> None:
    made = _swabbed_person()
    array = b"[" + msgspec.json.encode(made) + b"," + old(made) + b"]"
    assert changelog_exact_decoder(PersonState)(array) is None
    # and the store still reads both, the older one upgraded
    store = StageStore(PersonState)
    store.restore(0, [(b"person-a", msgspec.json.encode(made)), (b"person-b", old(made))])
    assert store.parts[0]["person-a"] == made
    assert isinstance(store.parts[0]["person-b"], PersonState)


def test_a_tube_with_its_members_in_a_dict_is_not_read_exactly() -> None:
    exact = changelog_exact_decoder(TubeState)
    assert exact(b'[{"first": 5}, {"first": 6, "members": {"person-a": 5}}]') is None
    got = exact(b'[{"first": 5, "req": {"gc": 9}}]')
    assert got is not None and type(got[0]) is TubeState and got[0].gc_due == 9
