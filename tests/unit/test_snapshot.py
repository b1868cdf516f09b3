"""Local snapshots of a stage partition: written atomically, used only when they match the
changelog, and discarded (with one log line, never a crash) when damaged or foreign."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from closedloop.agents.state import PersonState
from closedloop.streams.engine.store import StageStore
from closedloop.streams.kafka import snapshot
from closedloop.streams.kafka.snapshot import (
    BUSY_EVERY_S,
    MAX_AGE_S,
    SPACING,
    Header,
    Snapshots,
    encoded_rows,
    read,
    write,
)

TOPIC = "city-app-person-state-changelog"
TOPIC_ID = "2f8a3c1e-0000-4000-8000-000000000001"
STATE = {"r:00000001": {"status": "tested"}, "r:00000002": {"status": "due"}}
PAIRS = list(encoded_rows(STATE))


@pytest.fixture
def snapshots(tmp_path: Path) -> Snapshots:
    made = Snapshots(tmp_path / "snapshots", topic_ids={TOPIC: TOPIC_ID})
    made.take(TOPIC, 3, 120, STATE)
    return made


def reopened(snapshots: Snapshots) -> Snapshots:
    """The same directory as a restarted worker sees it."""
    return Snapshots(snapshots.directory, topic_ids=dict(snapshots.topic_ids))


def test_a_snapshot_gives_back_the_changelog_pairs_and_its_offset(snapshots: Snapshots
                                                                  ) -> None:
    loaded = reopened(snapshots).load(TOPIC, 3, end=125)
    assert loaded is not None
    assert (loaded.offset, loaded.keys, list(loaded.pairs)) == (120, 2, PAIRS)


def test_a_snapshot_at_the_changelog_end_is_used(snapshots: Snapshots) -> None:
    assert reopened(snapshots).load(TOPIC, 3, end=120) is not None


def test_a_partition_without_a_snapshot_has_none(snapshots: Snapshots) -> None:
    assert reopened(snapshots).load(TOPIC, 4, end=10) is None


@pytest.mark.parametrize(("end", "topic_id", "why"), [
    (119, TOPIC_ID, "ahead of the changelog"),
    (125, "9b1d0c7e-0000-4000-8000-000000000002", "another topic of that name"),
])
def test_a_snapshot_ahead_of_the_changelog_or_of_another_topic_is_discarded(
    snapshots: Snapshots, end: int, topic_id: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    again = Snapshots(snapshots.directory, topic_ids={TOPIC: topic_id})
    with caplog.at_level(logging.WARNING, "closedloop.worker"):
        assert again.load(TOPIC, 3, end=end) is None
    assert [why in r.getMessage() for r in caplog.records] == [True]
    assert not snapshots.path(TOPIC, 3).exists()  # never looked at again


def test_a_snapshot_renamed_to_another_partition_is_discarded(snapshots: Snapshots) -> None:
    snapshots.path(TOPIC, 3).rename(snapshots.path(TOPIC, 5))
    assert reopened(snapshots).load(TOPIC, 5, end=500) is None


def test_a_snapshot_older_than_the_changelog_keeps_tombstones_is_discarded(
    snapshots: Snapshots
) -> None:
    old = Header(TOPIC, TOPIC_ID, 3, 120, 2, time.time() - MAX_AGE_S - 1, "")
    write(snapshots.path(TOPIC, 3), old, PAIRS)
    assert reopened(snapshots).load(TOPIC, 3, end=125) is None


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "garbage"])
def test_a_damaged_or_truncated_snapshot_is_discarded_with_one_log_line(
    snapshots: Snapshots, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = snapshots.path(TOPIC, 3)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "flipped":
        data[len(data) // 2] ^= 0x40
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"\x00\x01not a snapshot at all" * 10)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, "closedloop.worker"):
        assert reopened(snapshots).load(TOPIC, 3, end=125) is None
    assert len(caplog.records) == 1
    assert "restored from the changelog alone" in caplog.records[0].getMessage()


def test_a_failed_write_leaves_the_previous_snapshot_and_no_temporary_file(
    snapshots: Snapshots
) -> None:
    def failing() -> Iterator[tuple[bytes, bytes]]:
        yield PAIRS[0]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write(snapshots.path(TOPIC, 3), Header(TOPIC, TOPIC_ID, 3, 200, 2, time.time(), ""),
              failing())
    assert [p.name for p in snapshots.directory.iterdir()] == [snapshots.path(TOPIC, 3).name]
    header, _ = read(snapshots.path(TOPIC, 3))
    assert header.offset == 120


def size_of(keys: int) -> Callable[[str, int], int]:
    return lambda topic, partition: keys


def test_nothing_is_due_while_the_changelog_is_where_the_snapshot_is(snapshots: Snapshots
                                                                     ) -> None:
    assert snapshots.due({(TOPIC, 3): 120}, size_of(2), idle=True) is None


def test_an_idle_batch_snapshots_the_partition_furthest_past_its_snapshot(tmp_path: Path
                                                                         ) -> None:
    made = Snapshots(tmp_path, topic_ids={TOPIC: TOPIC_ID}, taken={(TOPIC, 1): (100, 0.0)})
    written = {(TOPIC, 0): 40, (TOPIC, 1): 190}
    assert made.due(written, size_of(50), idle=True, now=1.0) == (TOPIC, 1)


def test_a_busy_partition_waits_for_its_snapshot_to_age(tmp_path: Path) -> None:
    made = Snapshots(tmp_path, topic_ids={TOPIC: TOPIC_ID}, taken={(TOPIC, 1): (100, 10.0)})
    written = {(TOPIC, 1): 5_000}
    assert made.due(written, size_of(50), idle=False, now=11.0) is None
    assert made.due(written, size_of(50), idle=False, now=10.0 + BUSY_EVERY_S) == (TOPIC, 1)


def test_a_busy_partition_whose_tail_is_small_against_its_keys_waits(tmp_path: Path) -> None:
    made = Snapshots(tmp_path, topic_ids={TOPIC: TOPIC_ID}, taken={(TOPIC, 1): (100, 0.0)})
    # a few records past a snapshot of 100,000 keys, while records keep coming
    assert made.due({(TOPIC, 1): 130}, size_of(100_000), idle=False,
                    now=10 * BUSY_EVERY_S) is None


def test_an_idle_worker_snapshots_even_a_small_tail(tmp_path: Path) -> None:
    made = Snapshots(tmp_path, topic_ids={TOPIC: TOPIC_ID}, taken={(TOPIC, 1): (100, 5.0)})
    assert made.due({(TOPIC, 1): 101}, size_of(100_000), idle=True, now=6.0) == (TOPIC, 1)


def test_after_a_snapshot_the_next_waits_in_proportion_to_its_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def clock() -> float:  # the snapshot begins at 10.0 and takes 0.5 s
        calls.append(10.0 if not calls else 10.5)
        return calls[-1]

    monkeypatch.setattr(snapshot.time, "monotonic", clock)
    made = Snapshots(tmp_path, topic_ids={TOPIC: TOPIC_ID})
    made.take(TOPIC, 1, 100, STATE)
    written = {(TOPIC, 1): 100, (TOPIC, 2): 50}
    assert made.resume_at == 10.5 + SPACING * 0.5
    # a tail small against its partition waits, busy or idle; one worth a snapshot waits only
    # while records keep coming
    small = size_of(1_000)
    assert made.due(written, small, idle=True, now=made.resume_at - 1) is None
    assert made.due(written, small, idle=True, now=made.resume_at) == (TOPIC, 2)
    assert made.due(written, size_of(2), idle=False, now=made.resume_at - 1) is None
    assert made.due(written, size_of(2), idle=True, now=made.resume_at - 1) == (TOPIC, 2)


def test_a_changelog_without_a_topic_id_gets_no_snapshot(tmp_path: Path) -> None:
    made = Snapshots(tmp_path, topic_ids={})
    assert made.due({(TOPIC, 1): 500}, size_of(1), idle=True) is None


PERSON = (b'{"last":1648863633,"gc_due":1649516400,"district":"d03","samples":[[1648852733,'
          b'"tb-000001fa",10,"site-d03-26",null,null,"d03"]],"last_result":[1648863633,'
          b'"negative"],"roster":[[1648825200,"pop-00000003","d03","g03-03","resident"]]}')


@pytest.mark.parametrize("schema_changed", [False, True])
def test_a_snapshot_restores_what_the_changelog_would_with_its_tail_on_top(
    tmp_path: Path, schema_changed: bool
) -> None:
    # given a person partition's rows, one of them deleted and one changed after the snapshot
    store = StageStore(PersonState)
    changelog = [(f"r:{n:08x}".encode(), PERSON.replace(b"d03", f"d{n:02d}".encode()))
                 for n in range(5)]
    store.restore(1, changelog)
    made = Snapshots(tmp_path, states={TOPIC: PersonState}, topic_ids={TOPIC: TOPIC_ID})
    made.take(TOPIC, 1, len(changelog), store.parts[1])
    tail: list[tuple[bytes | None, bytes | None]] = [
        (b"r:00000001", None), (b"r:00000002", PERSON.replace(b"d03", b"d15"))]
    if schema_changed:  # written by a version whose shapes differ: read as the changelog is
        header, pairs = read(made.path(TOPIC, 1))
        write(made.path(TOPIC, 1), msgspec.structs.replace(header, schema="another"), pairs)
    # when it is restored from the snapshot and the tail
    loaded = Snapshots(tmp_path, states={TOPIC: PersonState},
                       topic_ids={TOPIC: TOPIC_ID}).load(TOPIC, 1, end=len(changelog) + 3)
    assert loaded is not None and (loaded.state is None) == schema_changed
    restored = StageStore(PersonState)
    keys = loaded.restore(restored, 1, tail)
    # then it holds what reading the whole changelog gives
    replayed = StageStore(PersonState)
    replayed.restore(1, [*changelog, *tail])
    assert keys == 4
    assert restored.parts[1] == replayed.parts[1]


def test_a_data_directory_that_cannot_hold_snapshots_is_logged_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "snapshots").write_bytes(b"a file where the directory should be")
    made = Snapshots(tmp_path / "snapshots", topic_ids={TOPIC: TOPIC_ID})
    with caplog.at_level(logging.WARNING, "closedloop.worker"):
        made.take(TOPIC, 1, 100, STATE)
    assert "could not write the snapshot" in caplog.text
    assert made.due({(TOPIC, 1): 100}, size_of(2), idle=True, now=made.resume_at) is None
