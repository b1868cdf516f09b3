"""A stage partition's state on local disk, with the changelog offset it holds.

Restoring a partition from its changelog reads every record the changelog keeps: at a city
of a million persons, tens of seconds during which the partition raises nothing. So the
worker keeps in its data directory, for each stage partition it owns, a snapshot of the
state as its changelog held it up to an offset, and a worker restarted on that directory
reads the snapshot and only the changelog's tail after that offset. The state and the
changelog agree by construction: every change of a state is written to the changelog in the
transaction that commits it, and a snapshot is taken only after a committed transaction,
of the offset that transaction's writes end at. Who wrote the tail does not matter (another
worker, while this one was away): a snapshot plus the records after its offset is the
changelog read from its start, the last value of a key winning.

A snapshot is used only when it can be: made for this very topic (its Kafka topic id, so a
topic deleted and created again under the same name does not match) and partition, at an
offset the changelog has reached (one ahead of the changelog belongs to another history),
and younger than :data:`MAX_AGE_S` (a tombstone written after the snapshot may have been
compacted away since). Otherwise, or when the file is damaged or cut short, it is removed
with one log line and the partition is restored from its changelog alone, as a fresh node's
is. Writing is atomic: a temporary file, fsync, rename, fsync of the directory.

The file: :data:`MAGIC`, then frames (a 4-byte big-endian length and a msgpack body): the
:class:`Header`, chunks of (key, value) pairs in the changelog's own encoding, an empty frame
that ends them, and the CRC-32 of every frame. A chunk holds its stage keys, their values as
one JSON array, and the partition's own rows apart: a chunk's states are decoded in one call
(a call per state cost more than the decoding itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, islice
from pathlib import Path
from typing import Final

import msgspec

from closedloop.agents.state import Keyed, upgraded
from closedloop.streams.engine.stage_runner import (
    DEDUP_PREFIX,
    META_PREFIX,
    DedupChunk,
    PartitionMeta,
)
from closedloop.streams.engine.store import StageStore

__all__ = ["MAX_AGE_S", "Header", "Loaded", "Pairs", "Snapshots", "decoded_rows", "encoded_rows",
           "read", "schema_of", "topic_ids", "write"]

log = logging.getLogger("closedloop.worker")

MAGIC: Final = b"CLSNAP\x00\x02"
CHUNK: Final = 5_000
"""Pairs per frame: the file is written and read a chunk at a time, never held twice."""
MAX_AGE_S: Final = 12 * 3600
"""A snapshot older than this is not used: a changelog's tombstones are kept 24 hours
(``delete.retention.ms``) before compaction may drop them, and a key deleted after the
snapshot must not come back from it."""
BUSY_EVERY_S: Final = 60.0
"""While records keep coming, a stage partition's snapshot is taken again after this long
at the soonest."""
WORTH: Final = 10
"""While records keep coming, a partition is snapshotted again only once its changelog went
at least a tenth of its keys past the last snapshot: a snapshot encodes the whole partition,
a restart reads the tail record by record."""
SPACING: Final = 50
"""After a snapshot that took *d* seconds, none is taken for ``SPACING`` × *d*: snapshots
cost at most about 2 % of the worker's time, whatever the state's size (a wall-clock
worker's ticks change a few rows a second, and its idle batches would otherwise snapshot
the whole state again and again)."""

_LENGTH: Final = struct.Struct(">I")
_encode = msgspec.msgpack.Encoder().encode
_encode_json = msgspec.json.Encoder().encode
_decode_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode
_PARTITION_ROWS: Final = (META_PREFIX.encode(), DEDUP_PREFIX.encode())


class Header(msgspec.Struct, frozen=True):
    topic: str
    topic_id: str
    partition: int
    offset: int  # the changelog's offset the state holds every record before
    keys: int
    written_at: float  # Unix time
    schema: str  # schema_of the stage's state when it was written


_decode_header = msgspec.msgpack.Decoder(Header).decode


class Chunk(msgspec.Struct, array_like=True, frozen=True):
    """A frame's pairs: the stage keys, their values (a JSON array of them), and the
    partition's own rows (its clock state, its remembered event ids) as pairs."""

    keys: list[str]
    values: bytes
    rows: list[tuple[bytes, bytes]]


_decode_chunk_frame = msgspec.msgpack.Decoder(Chunk).decode


def _chunk(pairs: list[tuple[bytes, bytes]]) -> Chunk:
    keys: list[str] = []
    values: list[bytes] = []
    rows: list[tuple[bytes, bytes]] = []
    for key, value in pairs:
        if key.startswith(_PARTITION_ROWS):
            rows.append((key, value))
        else:
            keys.append(key.decode("utf-8", "replace"))
            values.append(value)
    return Chunk(keys, b"[" + b",".join(values) + b"]", rows)


class Damaged(Exception):
    """A snapshot file that cannot be read back whole."""


def write(path: Path, header: Header, pairs: Iterable[tuple[bytes, bytes]]) -> int:
    """Write a snapshot atomically; returns its size in bytes."""
    steps = writing(path, header, pairs)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return int(done.value)


def writing(path: Path, header: Header, pairs: Iterable[tuple[bytes, bytes]]
            ) -> Generator[None, None, int]:
    """:func:`write`, a step for each chunk: the caller may do something else between two
    (the worker answers its group's heartbeats and its web pages); returns the size."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    crc = 0
    size = len(MAGIC)
    try:
        with temporary.open("wb") as out:
            out.write(MAGIC)

            def frame(body: bytes) -> None:
                nonlocal crc, size
                data = _LENGTH.pack(len(body)) + body
                crc = zlib.crc32(data, crc)
                out.write(data)
                size += len(data)

            frame(_encode(header))
            it = iter(pairs)
            while chunk := list(islice(it, CHUNK)):
                frame(_encode(_chunk(chunk)))
                yield
            frame(b"")
            out.write(_LENGTH.pack(crc))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return size + _LENGTH.size


def read(path: Path) -> tuple[Header, Pairs]:
    """A snapshot's header and its pairs, the whole file checked first; raises
    :class:`Damaged` (and :class:`OSError` when it cannot be read)."""
    data = memoryview(path.read_bytes())
    if bytes(data[:len(MAGIC)]) != MAGIC:
        raise Damaged("not a snapshot of this format")
    if len(data) < len(MAGIC) + 2 * _LENGTH.size:
        raise Damaged("cut short")
    body = data[len(MAGIC):-_LENGTH.size]
    (crc,) = _LENGTH.unpack(data[-_LENGTH.size:])
    if zlib.crc32(body) != crc:
        raise Damaged("checksum mismatch (cut short or damaged)")
    frames = list(_frames(body))
    if not frames or frames[-1]:
        raise Damaged("no end frame")
    try:
        header = _decode_header(frames[0])
        chunks = [_decode_chunk_frame(frame) for frame in frames[1:-1]]
    except msgspec.DecodeError as exc:
        raise Damaged(f"undecodable ({exc})") from None
    return header, Pairs(chunks)


class Pairs:
    """A snapshot's (key, value) pairs, each chunk's stage keys first; iterated as often as
    asked (its pairs are those of one state each: their order does not matter)."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        for chunk in self.chunks:
            yield from zip((key.encode() for key in chunk.keys),
                           (bytes(raw) for raw in _decode_raws(chunk.values)), strict=True)
            yield from chunk.rows


def _frames(body: memoryview) -> Iterator[memoryview]:
    at = 0
    while at < len(body):
        if at + _LENGTH.size > len(body):
            raise Damaged("a frame cut short")
        (length,) = _LENGTH.unpack(body[at:at + _LENGTH.size])
        at += _LENGTH.size
        if at + length > len(body):
            raise Damaged("a frame cut short")
        yield body[at:at + length]
        at += length


def encoded_rows(data: Mapping[str, object]) -> Iterator[tuple[bytes, bytes]]:
    """A partition's rows as its changelog holds them: UTF-8 keys, msgspec JSON values."""
    for key, value in data.items():
        yield key.encode(), _encode_json(value)


@cache
def schema_of(state: type[Keyed]) -> str:
    """A fingerprint of the JSON shapes of a stage's rows (its state, its partition rows):
    a snapshot written with the same is read with plain decoders, the upgrades of older
    shapes skipped (the states it holds were in memory, upgraded already)."""
    components = msgspec.json.schema_components([state, PartitionMeta, DedupChunk])
    return hashlib.sha256(msgspec.json.encode(components)).hexdigest()[:16]


@cache
def _plain_decoder(state: type[Keyed]) -> Callable[[bytes], list[Keyed]]:
    return msgspec.json.Decoder(list[state]).decode  # type: ignore[valid-type]


_decode_meta = msgspec.json.Decoder(PartitionMeta).decode
_decode_dedup = msgspec.json.Decoder(DedupChunk).decode


def decoded_rows(pairs: Pairs, state: type[Keyed]) -> dict[str, object]:
    """A partition's rows from a snapshot's pairs in this version's shapes; raises
    :class:`msgspec.DecodeError` on one it cannot read."""
    decode = _plain_decoder(state)
    rows: dict[str, object] = {}
    for chunk in pairs.chunks:
        states = decode(chunk.values)
        if len(states) != len(chunk.keys):
            raise msgspec.DecodeError("a chunk's keys and states differ in number")
        for st in states:
            if st.req is not None:  # as the changelog is read (held in memory: upgraded)
                upgraded(st)
        rows.update(zip(chunk.keys, states, strict=True))
        for raw_key, value in chunk.rows:
            key = raw_key.decode("utf-8", "replace")
            rows[key] = (_decode_meta(value) if key.startswith(META_PREFIX)
                         else _decode_dedup(value))
    return rows


@dataclass(slots=True)
class Loaded:
    """A usable snapshot: the offset to read the changelog on from, and its pairs."""

    offset: int
    keys: int
    pairs: Pairs
    state: type[Keyed] | None  # the stage's state, when the pairs are in this version's shapes

    def restore(self, store: StageStore, partition: int,
                tail: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Rebuild the partition in ``store`` from this snapshot and the changelog records
        after it (``tail``); returns its keys."""
        if self.state is not None:
            try:
                base = decoded_rows(self.pairs, self.state)
            except msgspec.DecodeError:
                pass  # the changelog's own decoding skips what it cannot read, with a warning
            else:
                return store.restore(partition, tail, base=base)
        return store.restore(partition, chain(self.pairs, tail))


@dataclass
class Snapshots:
    """The snapshots in one data directory: which are due, taking and loading them."""

    directory: Path
    states: dict[str, type[Keyed]] = field(default_factory=dict)  # changelog -> its state
    topic_ids: dict[str, str] = field(default_factory=dict)  # changelog -> Kafka topic id
    taken: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)
    """(changelog, partition) -> (offset, monotonic time) of its latest snapshot."""
    resume_at: float = 0.0  # monotonic time before which no snapshot is due (SPACING)

    def path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{topic}.{partition}.snapshot"

    def due(self, written: Mapping[tuple[str, int], int], size: Callable[[str, int], int],
            idle: bool, now: float | None = None) -> tuple[str, int] | None:
        """The stage partition to snapshot after this batch, if any: of those whose
        changelog went past their snapshot, the furthest. A snapshot is worth taking
        (:data:`WORTH`, ``size``: a partition's keys) or not; while records keep coming, one
        worth it whose snapshot is :data:`BUSY_EVERY_S` old, no sooner than :data:`SPACING`
        allows; once a batch brings nothing, any worth it at once, and the rest as
        :data:`SPACING` allows. One a batch at most, so no batch waits for more than one
        partition's encoding."""
        now = time.monotonic() if now is None else now
        spaced = now < self.resume_at
        if spaced and not idle:
            return None
        best: tuple[int, tuple[str, int]] | None = None
        for where, end in written.items():
            if where[0] not in self.topic_ids:
                continue  # no topic id to bind a snapshot to
            offset, at = self.taken.get(where, (0, -BUSY_EVERY_S))
            tail = end - offset
            if tail <= 0:
                continue
            worth = tail * WORTH >= size(*where)
            wanted = (worth or not spaced) if idle else (worth and now - at >= BUSY_EVERY_S)
            if not wanted:
                continue
            if best is None or tail > best[0]:
                best = (tail, where)
        return None if best is None else best[1]

    def take(self, topic: str, partition: int, offset: int,
             data: Mapping[str, object]) -> None:
        """Snapshot ``data``, the partition's state as its changelog holds it before
        ``offset``, at once; a failure to write is logged and the previous snapshot
        stays."""
        steps = self.taking(topic, partition, offset, data)
        while next(steps, True) is None:
            pass

    async def take_async(self, topic: str, partition: int, offset: int,
                         data: Mapping[str, object]) -> None:
        """:meth:`take`, yielding to the event loop between two chunks: the caller makes
        sure nothing changes ``data`` meanwhile (the worker holds its batch lock)."""
        for _ in self.taking(topic, partition, offset, data):
            await asyncio.sleep(0)

    def taking(self, topic: str, partition: int, offset: int,
               data: Mapping[str, object]) -> Iterator[None]:
        state = self.states.get(topic)
        header = Header(topic, self.topic_ids[topic], partition, offset, len(data),
                        time.time(), "" if state is None else schema_of(state))
        started = time.monotonic()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            size = yield from writing(self.path(topic, partition), header, encoded_rows(data))
        except OSError as exc:  # a full or read-only disk: the worker goes on without
            log.warning("closedloop: could not write the snapshot of %s[%s] (%s); the "
                        "previous one stays", topic, partition, exc.strerror or exc)
            size = 0
        self.taken[(topic, partition)] = (offset, time.monotonic())  # not again at once
        self.resume_at = time.monotonic() + SPACING * (time.monotonic() - started)
        if not size:
            return
        log.debug("closedloop: snapshot of %s[%s] at offset %s: %s keys, %s bytes, %.3f s",
                  topic, partition, offset, len(data), size, time.monotonic() - started)

    def load(self, topic: str, partition: int, end: int) -> Loaded | None:
        """The partition's snapshot if it can be used with a changelog that ends at
        ``end``; else None (:meth:`load_all`)."""
        return self.load_all({(topic, partition): end})[(topic, partition)]

    def load_all(self, ends: Mapping[tuple[str, int], int]
                 ) -> dict[tuple[str, int], Loaded | None]:
        """The snapshot of each (changelog, partition) of ``ends`` that can be used with a
        changelog ending there, else None. The files that cannot be used are removed and
        named on one log line (warnings of one wording are limited to one per window:
        :mod:`~closedloop.streams.kafka.quiet`)."""
        loaded: dict[tuple[str, int], Loaded | None] = {}
        discarded: list[str] = []
        for (topic, partition), end in ends.items():
            path = self.path(topic, partition)
            loaded[(topic, partition)] = None
            if not path.exists():
                continue
            try:
                header, pairs = read(path)
            except (OSError, Damaged) as exc:
                reason: str | None = f"unreadable ({exc.strerror or exc})" if isinstance(
                    exc, OSError) else f"damaged: {exc}"
            else:
                reason = self._unusable(header, topic, partition, end)
            if reason is not None:
                discarded.append(f"{topic}[{partition}] {reason}")
                with suppress(OSError):  # not removable: it is refused again next time
                    path.unlink(missing_ok=True)
                self.taken.pop((topic, partition), None)
                continue
            self.taken[(topic, partition)] = (header.offset, time.monotonic())
            state = self.states.get(topic)
            loaded[(topic, partition)] = Loaded(
                header.offset, header.keys, pairs,
                state if state is not None and header.schema == schema_of(state) else None)
        if discarded:
            log.warning("closedloop: snapshots not used, their partitions restored from the "
                        "changelog alone: %s", "; ".join(discarded))
        return loaded

    def _unusable(self, header: Header, topic: str, partition: int, end: int) -> str | None:
        if header.topic != topic or header.partition != partition:
            return "made for another partition"
        if header.topic_id != self.topic_ids.get(topic):
            return "made for another topic of that name (its id differs)"
        if header.offset > end:
            return f"ahead of the changelog (offset {header.offset} > end {end})"
        if time.time() - header.written_at > MAX_AGE_S:
            return "too old"
        return None


NO_ID: Final = "00000000-0000-0000-0000-000000000000"


def topic_ids(admin: object, topics: list[str]) -> dict[str, str]:
    """Each topic's Kafka topic id (kafka-python's admin client), for those that have one: a
    broker too old to give ids gets no snapshots, and its workers restore from changelogs."""
    described = admin.describe_topics(topics)  # type: ignore[attr-defined]
    ids = {d.get("name", d.get("topic")): str(d.get("topic_id") or "") for d in described}
    return {name: found for name, found in ids.items() if found and found != NO_ID}
