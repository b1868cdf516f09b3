"""A stage's keyed state on its partitions: a dict per partition, and its changelog.

The worker and the in-memory partitioned bus keep each partition's typed states as they are
(the rules change them in place, as replay's dicts are changed) and remember which keys
changed; the worker writes each changed key once per batch to the stage's compacted
changelog topic, partition for partition, and restores a partition from it on assignment.
(A table that decoded a row on every read and changelogged every assignment, as Faust's,
costs a record per key per input event and cannot be written from a batch.)

A changelog record is the key's UTF-8 bytes and the msgspec JSON of its state, or of one of
the partition's own rows (its clock state, a chunk of the event ids it remembered), or a
tombstone. Replaying a partition's changelog from the start is idempotent: the last value of
a key wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import compress

import msgspec

from closedloop.agents.state import (
    Keyed,
    changelog_batch_decoder,
    changelog_decoder,
    changelog_exact_decoder,
    legacy_ids,
)
from closedloop.streams.engine.dedup import BUCKET, digest
from closedloop.streams.engine.stage_runner import (
    META_PREFIX,
    DedupChunk,
    PartitionMeta,
    dedup_key,
    is_partition_row,
)

__all__ = ["StageStore"]

log = logging.getLogger("closedloop.worker")
_encode = msgspec.json.Encoder().encode


class StageStore:
    """The :class:`~closedloop.streams.engine.topology.Table` of one stage on a worker.

    Reads and writes go to the partition selected with :meth:`enter` (the worker enters a
    record's partition before handing the record to the stage), so a key lives in the
    partition whose records made it, whatever its own hash: a round's report key lives where
    its shares were counted.
    """

    __slots__ = ("_data", "_decode_chunk", "_decode_exact", "_decode_meta", "_decode_state",
                 "_decode_states", "_dirty", "_dirty_of", "_older", "parts", "published")

    def __init__(self, state: type[Keyed]) -> None:
        self.parts: dict[int, dict[str, object]] = {}
        self._dirty_of: dict[int, set[str]] = {}
        self._data: dict[str, object] = {}
        self._dirty: set[str] = set()
        self._decode_state = changelog_decoder(state)  # older shapes upgraded
        self._decode_exact = changelog_exact_decoder(state)  # a restore's, in one call
        self._older, self._decode_states = changelog_batch_decoder(state)  # and when not
        self._decode_meta = msgspec.json.Decoder(PartitionMeta).decode
        self._decode_chunk = msgspec.json.Decoder(DedupChunk).decode
        # person stage: a digest of each person's last published status, per partition
        # (in memory only: after a restore the first status of each person goes out again)
        self.published: dict[int, dict[str, int]] = {}

    def published_in(self, partition: int) -> dict[str, int]:
        return self.published.setdefault(partition, {})

    def enter(self, partition: int) -> None:
        """Select ``partition`` for the reads and writes that follow."""
        data = self.parts.get(partition)
        if data is None:
            data = self.parts[partition] = {}
            self._dirty_of[partition] = set()
        self._data, self._dirty = data, self._dirty_of[partition]

    # -- the Table protocol -----------------------------------------------------------------

    def get(self, key: str, /) -> object:
        return self._data.get(key)

    def __setitem__(self, key: str, value: object, /) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str, /) -> None:
        del self._data[key]
        self._dirty.add(key)

    def __contains__(self, key: object, /) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    # -- partitions and the changelog -------------------------------------------------------

    def keys(self, partition: int) -> list[str]:
        """The partition's state keys (its own rows left out)."""
        return [key for key in self.parts.get(partition, {}) if not is_partition_row(key)]

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns."""
        self.parts.pop(partition, None)
        self._dirty_of.pop(partition, None)
        self.published.pop(partition, None)
        self._data, self._dirty = {}, set()

    def changes(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(partition, key, value or None) for every key changed since the last call."""
        for partition, dirty in self._dirty_of.items():
            if not dirty:
                continue
            data = self.parts[partition]
            for key in dirty:
                value = data.get(key)
                if value is None:
                    yield partition, key.encode(), None
                    continue
                encoded = _encode(value)
                if type(value) is DedupChunk:
                    # Its digests are in the partition's Dedup from now on (a restore reads
                    # them from the changelog): the row stays, empty, so that it is still
                    # deleted once the retention passes its hour (~50 bytes a person).
                    data[key] = DedupChunk(value.hour, b"")
                yield partition, key.encode(), encoded
            dirty.clear()

    def restore(self, partition: int, records: Iterable[tuple[bytes | None, bytes | None]],
                base: dict[str, object] | None = None) -> int:
        """Rebuild ``partition`` from its changelog records, oldest first, on top of ``base``
        (its rows as of the first record, decoded: a local snapshot's), else from nothing;
        returns the keys.

        A record this version cannot read (another version's, or damaged) is skipped with a
        warning that names no key: the state it held is lost, never the worker. The event
        ids a state remembered itself, as states did before partitions kept them, become
        the partition's (:func:`_legacy_rows`).
        """
        data: dict[str, object] = {} if base is None else base
        latest: dict[str, bytes | None] = {}  # the last record of each key wins
        for raw_key, value in records:
            if raw_key is not None:
                latest[raw_key.decode("utf-8", "replace")] = value
        keys: list[str] = []
        values: list[bytes] = []
        one_by_one: list[tuple[str, bytes]] = []  # older shapes, read as they always were
        older = self._older
        skipped = 0
        for key, value in latest.items():
            if value is None:
                data.pop(key, None)
            elif is_partition_row(key):
                try:
                    data[key] = (self._decode_meta(value) if key.startswith(META_PREFIX)
                                 else self._decode_chunk(value))
                except msgspec.DecodeError:
                    skipped += 1
            else:
                keys.append(key)
                values.append(value)
        array = b"[" + b",".join(values) + b"]"
        exact = self._decode_exact(array) if values else []
        if exact is not None and len(exact) == len(keys):  # this version's shape, as a rule
            data.update(zip(keys, exact, strict=True))
            keys, values = [], []
        elif values and older(array):  # one asks for all (a call each cost a restore seconds)
            current = [not older(value) for value in values]
            one_by_one.extend((key, value) for key, value, ok in zip(keys, values, current,
                                                                      strict=True) if not ok)
            keys = list(compress(keys, current))
            values = list(compress(values, current))
            array = b"[" + b",".join(values) + b"]"
        legacy: dict[str, dict[str, int]] = {}
        states = self._decode_states(array) if values else []
        if states is not None and len(states) == len(keys):
            data.update(zip(keys, states, strict=True))
        else:  # one cannot be read (or reads as two): one by one, to skip just that one
            one_by_one.extend(zip(keys, values, strict=True))
        for key, value in one_by_one:
            try:
                data[key] = self._decode_state(value)
            except msgspec.DecodeError:
                skipped += 1
                continue
            ids = legacy_ids(value)
            if ids:
                legacy[key] = ids
        if skipped:
            log.warning("closedloop: %s changelog records of partition %s could not be read "
                        "and were skipped", skipped, partition)
        data.update(_legacy_rows(legacy.values()))
        self.parts[partition] = data
        self._dirty_of[partition] = set()
        return len(data)


def _legacy_rows(ids: Iterable[dict[str, int]]) -> dict[str, DedupChunk]:
    """The partition rows of event ids states kept as ``{"topic:event_id": event time}``:
    one row per hour, read back like any other (not written: the states still hold them
    until they change)."""
    hours: dict[int, list[bytes]] = {}
    for remembered in ids:
        for name, at in remembered.items():
            topic, _, event_id = name.partition(":")
            hours.setdefault(at // BUCKET, []).append(digest(topic, event_id))
    return {dedup_key(hour, "legacy"): DedupChunk(hour, b"".join(keys))
            for hour, keys in hours.items()}
