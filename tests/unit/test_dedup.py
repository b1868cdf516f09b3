"""De-duplication by (topic, event_id), remembered for dedup_retention past the event's hour."""

from __future__ import annotations

import random
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


def test_a_durable_dedup_holds_an_id_in_a_few_dozen_bytes_across_takes() -> None:
    dedup = Dedup(RETENTION, durable=True)
    for n in range(30_000):
        assert not dedup.seen("sampling", f"ev-{n}", HOUR0 + n % BUCKET, HOUR0)
    new, forgotten = dedup.take()
    assert sum(len(digests) for digests in new.values()) == 30_000 * 15 and not forgotten
    held = (sys.getsizeof(dedup._log) + sys.getsizeof(dedup._tags)
            + len(dedup._entries) * dedup._entries.itemsize)
    # at most 15 in the log (and the 1/8 a growing bytearray keeps spare), 5 a slot, three
    # slots an id just after a rebuild; a set of digests took ~95 bytes an id
    assert held <= 34 * len(dedup) == 34 * 30_000
    # it still knows every id, and still remembers new ones
    assert all(dedup.seen("sampling", f"ev-{n}", HOUR0, HOUR0) for n in range(30_000))
    assert not dedup.seen("sampling", "ev-new", HOUR0, HOUR0)
    assert dedup.seen("sampling", "ev-new", HOUR0, HOUR0)
    assert dedup.take()[0] == {HOUR0 // BUCKET: digest("sampling", "ev-new")}


class _Model:
    """What a Dedup answers, the plain way: a set of keys and a queue of (hour, keys) runs in
    arrival order, dropped from the front once expired."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.runs: list[tuple[int, list[tuple[str, str]]]] = []
        self.new: dict[int, list[tuple[str, str]]] = {}
        self.forgotten: list[int] = []

    def seen(self, topic: str, event_id: str, event_time: int, clock: int) -> bool:
        if (topic, event_id) in self.keys:
            return True
        while self.runs and (self.runs[0][0] + 1) * BUCKET <= clock - RETENTION:
            hour, keys = self.runs.pop(0)
            self.keys.difference_update(keys)
            self.forgotten.append(hour)
        self.keys.add((topic, event_id))
        hour = event_time // BUCKET
        if self.runs and self.runs[-1][0] == hour:
            self.runs[-1][1].append((topic, event_id))
        else:
            self.runs.append((hour, [(topic, event_id)]))
        self.new.setdefault(hour, []).append((topic, event_id))
        return False

    def take(self) -> tuple[dict[int, bytes], list[int]]:
        live = {key for _, keys in self.runs for key in keys}
        new = {hour: b"".join(digest(*key) for key in keys if key in live)
               for hour, keys in self.new.items()}
        taken = ({hour: digests for hour, digests in new.items() if digests}, self.forgotten)
        self.new, self.forgotten = {}, []
        return taken


def test_a_dedup_answers_and_hands_over_what_a_set_of_its_keys_would() -> None:
    # Ids repeat, events come up to an hour late, the clock passes the retention several
    # times over (expiry, tombstones, rebuilds both ways), and takes come every few events.
    rng = random.Random(7)
    dedup, model = Dedup(RETENTION, durable=True), _Model()
    clock = HOUR0
    for step in range(60_000):
        clock += rng.choice((0, 1, 30, 400)) if step % 5000 else RETENTION // 2
        event_time = clock - rng.choice((0, 0, 0, 5, BUCKET))
        topic, event_id = rng.choice(("lab", "sampling")), f"ev-{rng.randrange(20_000)}"
        assert dedup.seen(topic, event_id, event_time, clock) == model.seen(
            topic, event_id, event_time, clock), step
        assert len(dedup) == len(model.keys)
        if rng.random() < 0.01:
            assert dedup.take() == model.take()
    assert dedup.take() == model.take()


def test_a_restore_keeps_what_was_added_before_it_for_the_next_take() -> None:
    dedup = Dedup(RETENTION, durable=True)
    dedup.seen("sampling", "ev-1", HOUR0, HOUR0)
    saved = digest("lab", "ev-2")
    dedup.load(HOUR0 // BUCKET, saved)  # the changelog's already: not handed over again
    dedup.load(HOUR0 // BUCKET - 1, digest("lab", "ev-3"))  # an older hour
    assert dedup.seen("lab", "ev-2", HOUR0, HOUR0) and dedup.seen("lab", "ev-3", HOUR0, HOUR0)
    assert dedup.take() == ({HOUR0 // BUCKET: digest("sampling", "ev-1")}, [])
    assert dedup.take() == ({}, [])


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


def test_a_reserved_table_loads_hours_without_growing_and_remembers_them_all() -> None:
    dedup = Dedup(RETENTION, durable=True)
    hours = {HOUR0 // BUCKET + n: b"".join(digest("sampling", f"ev-{n}-{i}") for i in range(3000))
             for n in range(4)}
    dedup.reserve(sum(len(chunk) for chunk in hours.values()) // 15)
    table = dedup._tags
    for hour, chunk in hours.items():
        dedup.load(hour, chunk)
    assert dedup._tags is table and len(dedup) == 12_000
    assert all(dedup.seen("sampling", f"ev-{n}-{i}", HOUR0, HOUR0)
               for n in range(4) for i in (0, 1_500, 2_999))
    assert not dedup.seen("sampling", "ev-9-0", HOUR0, HOUR0)
