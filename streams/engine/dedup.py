"""``event_id`` de-duplication (CONTRACT.md §3) with bounded retention and compact keys.

The key is (topic name, event_id). An id is remembered until the clock is
``dedup_retention`` past the hour of the event's time, so memory is bounded by the event rate
times the retention, not by the length of the stream. A testing round's day is ~20 million
events, every one remembered for 72 h: each key is kept as a 15-byte BLAKE2b digest (a
collision among 10^9 ids has odds of about 4 x 10^-19, and would only make the engine ignore
an event as a repeat).

No key is an object of its own. The digests sit end to end in one ``bytearray``, the *log*,
in arrival order, which is event order up to the allowed lateness; the log is cut into runs
of one event hour, and expiry drops whole runs from its front, so the runs are a few dozen
(hour, first entry) pairs, not a list per hour. Lookups go through an open-addressing table
(linear probing) of 4-byte entry numbers over the log, with a 1-byte tag per slot (a byte of
the digest, never 0: 0 marks an empty slot), so a probe passes an occupied slot on a byte
comparison and compares the whole 15-byte digest only when the tags agree: a repeat is only
ever found for the same digest. Expired entries stay in the table as tombstones (their
numbers fall below the log's first) until it is rebuilt, when live and dead entries fill 2/3
of it (or expiry left it nearly empty): a rebuild sizes it to a third full and renumbers
the log from 0, so numbers stay small. About 25 bytes an id (15 in the log, 5 per slot at
33%–67% load) instead of the ~95 of a digest's ``bytes`` object (48), its slot in a set and
in its hour's list; a lookup is a short Python loop instead of one C call
(``closedloop bench worker`` prices it).

On a worker the ids must outlive a restart (a producer may send an event again a day later),
so a durable :class:`Dedup` also hands over, once per batch, the digests it added since
(:meth:`Dedup.take`: one record per hour) and the hours it forgot; the stage keeps them in
its changelog, and :meth:`Dedup.load` reads them back on assignment. Replay's needs no such
copy.
"""

from __future__ import annotations

from array import array
from collections import deque
from hashlib import blake2b
from typing import Final

from closedloop.streams.engine.deadlines import NEVER

__all__ = ["BUCKET", "DIGEST", "Dedup", "digest"]

BUCKET: Final = 3600  # seconds of event time per expiry run
DIGEST: Final = 15  # bytes of BLAKE2b digest a key is kept as (see above)
_SMALLEST: Final = 8  # slots of the smallest table
_SPREAD: Final = 3  # a rebuilt table has this many slots per live entry
_SPARSE: Final = 8  # ... and expiry that leaves more slots than this per live entry shrinks it


def digest(topic: str, event_id: str) -> bytes:
    """The key :class:`Dedup` keeps for (topic, event_id) (what ``seen`` computes, without
    its per-topic head start)."""
    hasher = blake2b(f"{topic}\x00".encode("utf-8", "surrogatepass"), digest_size=DIGEST)
    hasher.update(event_id.encode("utf-8", "surrogatepass"))
    return hasher.digest()


class Dedup:
    __slots__ = ("_base", "_entries", "_expires", "_filled", "_forgotten", "_held", "_limit",
                 "_log", "_next", "_prefixes", "_runs", "_tags", "_taken", "retention")

    def __init__(self, retention: int, *, durable: bool = False) -> None:
        self.retention = retention
        self._log = bytearray()  # the live digests, end to end, oldest first
        self._base = 0  # the number of the log's first entry
        self._next = 0  # the number the next entry gets
        self._runs: deque[tuple[int, int]] = deque()  # (hour, its first entry's number)
        # The table: per slot a tag (0: empty) and an entry's number + 1 (at most base: an
        # expired entry, a tombstone).
        self._tags = bytearray(_SMALLEST)
        self._entries = array("I", bytes(4 * _SMALLEST))
        self._filled = 0  # slots not empty
        self._limit = _SMALLEST * 2 // 3
        # durable: the number of the first entry not yet taken, the hours forgotten, and
        # digests added before a restore that the next take still owes
        self._taken: int | None = 0 if durable else None
        self._forgotten: list[int] = []
        self._held: dict[int, bytes] = {}
        # The clock at which the oldest run expires (NEVER while there is none): one
        # comparison per event instead of a look at the runs.
        self._expires = NEVER
        # Per topic, a hasher that has already read "<topic>\0": each event hashes only its
        # id (the digest is that of the whole key).
        self._prefixes: dict[str, blake2b] = {}

    def __len__(self) -> int:
        return self._next - self._base

    def seen(self, topic: str, event_id: str, event_time: int, clock: int) -> bool:
        """True if (topic, event_id) was seen before; otherwise remember it."""
        prefix = self._prefixes.get(topic)
        if prefix is None:
            prefix = self._prefixes[topic] = blake2b(
                f"{topic}\x00".encode("utf-8", "surrogatepass"), digest_size=DIGEST)
        hasher = prefix.copy()
        hasher.update(event_id.encode("utf-8", "surrogatepass"))
        key = hasher.digest()
        slot = self._probe(key)
        if slot < 0:
            return True
        tags = self._tags
        if clock - self.retention >= self._expires:
            self._expire(clock - self.retention)
            if self._tags is not tags:  # rebuilt: the free slot found is another table's
                slot = self._probe(key)
        hour = event_time // BUCKET
        number = self._next
        self._next = number + 1
        self._log += key
        self._tags[slot] = key[0] or 1
        self._entries[slot] = number + 1
        runs = self._runs
        if not runs or runs[-1][0] != hour:
            runs.append((hour, number))
            if len(runs) == 1:
                self._expires = (hour + 1) * BUCKET
        self._filled += 1
        if self._filled > self._limit:
            self._rebuild(len(self))
        return False

    def _probe(self, key: bytes) -> int:
        """The slot ``key`` goes into, or -1 if it is there already.

        The slot comes from Python's hash of the digest, the tag from one of its bytes: the
        two are independent, so a tag tells apart most keys that meet on a slot, and only a
        matching tag costs a comparison of the whole digest.
        """
        tags = self._tags
        size = len(tags)
        slot = hash(key) % size
        tag = key[0] or 1
        while found := tags[slot]:
            if found == tag:
                number = self._entries[slot]
                if number > self._base and self._log.startswith(
                        key, (number - 1 - self._base) * DIGEST):
                    return -1
            slot += 1
            if slot == size:
                slot = 0
        return slot

    def _expire(self, horizon: int) -> None:
        runs = self._runs
        while runs and (runs[0][0] + 1) * BUCKET <= horizon:
            hour, _ = runs.popleft()
            if self._taken is not None:
                self._forgotten.append(hour)
        first = runs[0][1] if runs else self._next
        del self._log[:(first - self._base) * DIGEST]
        self._base = first
        self._expires = (runs[0][0] + 1) * BUCKET if runs else NEVER
        if len(self) * _SPARSE < len(self._tags) > _SMALLEST:
            self._rebuild(len(self))

    def _rebuild(self, room: int) -> None:
        """A table for the live entries alone, with slots for ``room`` entries a third full,
        and the log renumbered from 0."""
        base, live = self._base, len(self)
        size = max(_SMALLEST, _SPREAD * room)
        tags, entries = bytearray(size), array("I", bytes(4 * size))
        log = bytes(self._log)  # slices of bytes are bytes (hashable) at once
        for number in range(live):
            key = log[number * DIGEST:(number + 1) * DIGEST]
            slot = hash(key) % size
            while tags[slot]:
                slot += 1
                if slot == size:
                    slot = 0
            tags[slot] = key[0] or 1
            entries[slot] = number + 1
        self._tags, self._entries, self._filled = tags, entries, live
        self._limit = size * 2 // 3
        self._runs = deque((hour, first - base) for hour, first in self._runs)
        self._next, self._base = live, 0
        if self._taken is not None:
            self._taken = max(0, self._taken - base)

    def take(self) -> tuple[dict[int, bytes], list[int]]:
        """A durable Dedup's changes since the last take: the digests added, concatenated per
        hour, and the hours forgotten since (whose saved digests may go)."""
        forgotten, self._forgotten = self._forgotten, []
        if self._taken is None:
            return {}, forgotten
        new, self._held = self._since(self._taken), {}
        self._taken = self._next
        return new, forgotten

    def _since(self, taken: int) -> dict[int, bytes]:
        """The digests of the live entries numbered ``taken`` or more, per hour, in arrival
        order (after those :meth:`load` held back)."""
        start, end = max(taken, self._base), self._next
        new = {hour: [digests] for hour, digests in self._held.items()}
        runs, log, base = self._runs, self._log, self._base
        oldest = len(runs) - 1
        while oldest > 0 and runs[oldest][1] > start:  # back to the run holding ``start``
            oldest -= 1
        for index in range(max(oldest, 0), len(runs)):
            hour, first = runs[index]
            last = runs[index + 1][1] if index + 1 < len(runs) else end
            if last > start:
                new.setdefault(hour, []).append(
                    bytes(log[(max(first, start) - base) * DIGEST:(last - base) * DIGEST]))
        return {hour: b"".join(parts) for hour, parts in new.items()}

    def reserve(self, count: int) -> None:
        """Room for ``count`` more ids without a rebuild: a restore about to :meth:`load`
        that many sizes the table once, where growing by each hour's load would rebuild it
        every time it filled."""
        if self._filled + count > self._limit:
            self._rebuild(len(self) + count)

    def load(self, hour: int, digests: bytes) -> None:
        """Remember the digests :meth:`take` handed over for ``hour`` (a restore). Runs are
        kept in hour order, so load the hours oldest first: an hour older than the newest
        run costs a rewrite of the log."""
        if self._taken is not None and self._taken < self._next:
            # the ids added since the last take are still the next take's; those loaded are
            # the changelog's already
            self._held = self._since(self._taken)
        if self._runs and self._runs[-1][0] > hour:
            self._load_older(hour, digests)
        else:
            self._append(hour, digests)
        if self._taken is not None:
            self._taken = self._next

    def _append(self, hour: int, digests: bytes) -> None:
        """The digests not known yet, as entries of ``hour`` after the newest (one loop, not
        a call per digest: a restore loads millions)."""
        if self._filled + len(digests) // DIGEST > self._limit:
            self._rebuild(len(self) + len(digests) // DIGEST)  # once, not as it fills
        tags, entries, log, base = self._tags, self._entries, self._log, self._base
        size, number = len(tags), self._next
        first = number
        for start in range(0, len(digests) - DIGEST + 1, DIGEST):
            key = digests[start:start + DIGEST]
            slot = hash(key) % size
            tag = key[0] or 1
            while found := tags[slot]:
                if found == tag:
                    known = entries[slot]
                    if known > base and log.startswith(key, (known - 1 - base) * DIGEST):
                        break
                slot += 1
                if slot == size:
                    slot = 0
            else:
                log += key
                number += 1
                tags[slot] = tag
                entries[slot] = number
        self._filled += number - first
        self._next = number
        if number > first and (not self._runs or self._runs[-1][0] != hour):
            self._runs.append((hour, first))
            if len(self._runs) == 1:
                self._expires = (hour + 1) * BUCKET

    def _load_older(self, hour: int, digests: bytes) -> None:
        """``load`` for an hour before the newest run: its new digests join the last run of
        that hour, or a run of their own after the last older one; the log is rewritten."""
        keys = dict.fromkeys(digests[start:start + DIGEST]
                             for start in range(0, len(digests) - DIGEST + 1, DIGEST))
        added = b"".join(key for key in keys if self._probe(key) >= 0)
        if not added:
            return
        runs, log, base = list(self._runs), self._log, self._base
        ends = [first for _, first in runs[1:]] + [self._next]
        parts = [(run_hour, bytes(log[(first - base) * DIGEST:(end - base) * DIGEST]))
                 for (run_hour, first), end in zip(runs, ends, strict=True)]
        at = next((index + 1 for index in range(len(parts) - 1, -1, -1)
                   if parts[index][0] <= hour), 0)
        if at and parts[at - 1][0] == hour:
            parts[at - 1] = (hour, parts[at - 1][1] + added)
        else:
            parts.insert(at, (hour, added))
        self._log = bytearray(b"".join(part for _, part in parts))
        self._runs, first = deque(), 0
        for run_hour, part in parts:
            self._runs.append((run_hour, first))
            first += len(part) // DIGEST
        self._base, self._next = 0, first
        self._expires = (self._runs[0][0] + 1) * BUCKET
        self._rebuild(len(self))
