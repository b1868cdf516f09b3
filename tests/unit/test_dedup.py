"""De-duplication by (topic, event_id), remembered for dedup_retention past the event's hour."""

from __future__ import annotations

import sys

from closedloop.streams.engine.dedup import BUCKET, Dedup, digest

HOUR0 = 1_662_426_000 // BUCKET * BUCKET  # the start of an hour
RETENTION = 72 * 3600


def test_an_id_is_a_repeat_on_its_topic_only() -> None:
    dedup = Dedup(RETENTION)
    assert not dedup.seen("sampling", "ev-1", HOUR0, HOUR0)
    assert dedup.seen("sampling", "ev-1", HOUR0 + 5, HOUR0)
    assert not dedup.seen("lab", "ev-1", HOUR0, HOUR0)
    assert len(dedup) == 2


def test_ids_that_only_look_alike_are_distinct() -> None:
    # the topic and the id are separated, so ("ab", "c") is not ("a", "bc")
    dedup = Dedup(RETENTION)
    assert not dedup.seen("ab", "c", HOUR0, HOUR0)
    assert not dedup.seen("a", "bc", HOUR0, HOUR0)
    assert not dedup.seen("a", "b\udcffc", HOUR0, HOUR0)  # not UTF-8 encodable: no crash


def test_an_id_is_remembered_until_the_retention_passed_its_hour() -> None:
    dedup = Dedup(RETENTION)
    dedup.seen("sampling", "ev-1", HOUR0 + 1800, HOUR0)
    # the clock at the end of the event's hour plus the retention, less a second: kept
    last_kept = HOUR0 + BUCKET + RETENTION - 1
    assert dedup.seen("sampling", "ev-1", last_kept, last_kept)
    # a new id at the instant the retention has passed the whole hour drops that hour
    gone = HOUR0 + BUCKET + RETENTION
    assert not dedup.seen("sampling", "ev-2", gone, gone)
    assert len(dedup) == 1
    assert not dedup.seen("sampling", "ev-1", gone, gone)


def test_a_durable_dedup_keeps_its_set_compact_across_takes() -> None:
    # 30,000 ids: a set that size has quadrupled its table to 131,072 slots (~4.4 a key)
    dedup = Dedup(RETENTION, durable=True)
    for n in range(30_000):
        assert not dedup.seen("sampling", f"ev-{n}", HOUR0 + n % BUCKET, HOUR0)
    new, forgotten = dedup.take()
    assert sum(len(digests) for digests in new.values()) == 30_000 * 15 and not forgotten
    table = (sys.getsizeof(dedup._seen) - sys.getsizeof(set())) // 16
    assert table <= 4 * len(dedup) == 4 * 30_000
    # the copy still knows every id, and still remembers new ones
    assert all(dedup.seen("sampling", f"ev-{n}", HOUR0, HOUR0) for n in range(30_000))
    assert not dedup.seen("sampling", "ev-new", HOUR0, HOUR0)
    assert dedup.seen("sampling", "ev-new", HOUR0, HOUR0)
    assert dedup.take()[0] == {HOUR0 // BUCKET: digest("sampling", "ev-new")}


def test_loaded_digests_are_remembered_once_each_and_expire_with_their_hour() -> None:
    dedup = Dedup(RETENTION)
    one, two, three = (digest("sampling", f"ev-{n}") for n in (1, 2, 3))
    later = HOUR0 + BUCKET
    dedup.load(later // BUCKET, two + three + two)  # a repeat inside a chunk counts once
    dedup.load(HOUR0 // BUCKET, one + two)  # an older hour after a newer one: ev-2 is known
    assert len(dedup) == 3
    assert dedup.seen("sampling", "ev-1", HOUR0, HOUR0)
    assert dedup.seen("sampling", "ev-3", later, later)
    # the older hour goes first, and ev-2 with the hour it was first loaded in
    gone = HOUR0 + BUCKET + RETENTION
    assert not dedup.seen("lab", "ev-9", gone, gone)
    assert not dedup.seen("sampling", "ev-1", gone, gone)
    assert dedup.seen("sampling", "ev-2", gone, gone)
    gone_too = later + BUCKET + RETENTION
    assert not dedup.seen("lab", "ev-8", gone_too, gone_too)
    assert not dedup.seen("sampling", "ev-2", gone_too, gone_too)
