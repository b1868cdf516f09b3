"""``event_id`` de-duplication (CONTRACT.md §3) with bounded retention and compact keys.

The key is (topic name, event_id). An id is remembered until the clock is
``dedup_retention`` past the hour of the event's time, so memory is bounded by the event rate
times the retention, not by the length of the stream. A testing round's day is ~20 million
events, every one remembered for 72 h: each key is kept as a 15-byte BLAKE2b digest (a
collision among 10^9 ids has odds of about 4 x 10^-19, and would only make the engine ignore
an event as a repeat), in hour buckets in arrival order, which is event order up to the
allowed lateness, so expiry drops a whole bucket at a time: about 90 bytes an id (the digest's
bytes object 48, its set slot, its bucket slot) instead of the ~250 of a (topic, event_id)
tuple with its own expiry entry. 15 bytes, not 16: a 16-byte digest's object takes 49 bytes,
which the allocator rounds up to 64.

On a worker the ids must outlive a restart (a producer may send an event again a day later),
so a durable :class:`Dedup` also hands over, once per batch, the digests it added since
(:meth:`Dedup.take`: one record per hour bucket) and the hours it forgot; the stage keeps
them in its changelog, and :meth:`Dedup.load` reads them back on assignment. Replay's needs
no such copy.
"""

from __future__ import annotations

import sys
from collections import deque
from hashlib import blake2b
from typing import Final

from closedloop.streams.engine.deadlines import NEVER

__all__ = ["BUCKET", "DIGEST", "Dedup", "digest"]

BUCKET: Final = 3600  # seconds of event time per expiry bucket
DIGEST: Final = 15  # bytes of BLAKE2b digest a key is kept as (see above)
_EMPTY_SET: Final = sys.getsizeof(set())  # a set's own object, before a table of its own
_SLOT: Final = 16  # bytes of a set's table per slot (a hash and a pointer)
_SPARSE: Final = 4  # a table of more slots than this per key is copied into a tighter one


def digest(topic: str, event_id: str) -> bytes:
    """The key :class:`Dedup` keeps for (topic, event_id) (what ``seen`` computes, without
    its per-topic head start)."""
    hasher = blake2b(f"{topic}\x00".encode("utf-8", "surrogatepass"), digest_size=DIGEST)
    hasher.update(event_id.encode("utf-8", "surrogatepass"))
    return hasher.digest()


class Dedup:
    __slots__ = ("_buckets", "_expires", "_forgotten", "_new", "_prefixes", "_seen",
                 "retention")

    def __init__(self, retention: int, *, durable: bool = False) -> None:
        self.retention = retention
        # durable: the digests added since the last take, by hour, and the hours forgotten
        self._new: dict[int, list[bytes]] | None = {} if durable else None
        self._forgotten: list[int] = []
        self._seen: set[bytes] = set()
        self._buckets: deque[tuple[int, list[bytes]]] = deque()  # (hour, its keys)
        # The clock at which the oldest bucket expires (NEVER while there is none): one
        # comparison per event instead of a look at the deque.
        self._expires = NEVER
        # Per topic, a hasher that has already read "<topic>\0": each event hashes only its
        # id (the digest is that of the whole key, as before).
        self._prefixes: dict[str, blake2b] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, topic: str, event_id: str, event_time: int, clock: int) -> bool:
        """True if (topic, event_id) was seen before; otherwise remember it."""
        prefix = self._prefixes.get(topic)
        if prefix is None:
            prefix = self._prefixes[topic] = blake2b(
                f"{topic}\x00".encode("utf-8", "surrogatepass"), digest_size=DIGEST)
        hasher = prefix.copy()
        hasher.update(event_id.encode("utf-8", "surrogatepass"))
        key = hasher.digest()
        seen = self._seen
        if key in seen:
            return True
        buckets = self._buckets
        if clock - self.retention >= self._expires:
            self._expire(clock - self.retention)
        seen.add(key)
        hour = event_time // BUCKET
        if buckets and buckets[-1][0] == hour:
            buckets[-1][1].append(key)
        else:
            buckets.append((hour, [key]))
            if len(buckets) == 1:
                self._expires = (hour + 1) * BUCKET
        if self._new is not None:
            self._new.setdefault(hour, []).append(key)
        return False

    def _expire(self, horizon: int) -> None:
        buckets = self._buckets
        while buckets and (buckets[0][0] + 1) * BUCKET <= horizon:
            hour, keys = buckets.popleft()
            self._seen.difference_update(keys)
            if self._new is not None:
                self._forgotten.append(hour)
                self._new.pop(hour, None)
        self._expires = (buckets[0][0] + 1) * BUCKET if buckets else NEVER

    def take(self) -> tuple[dict[int, bytes], list[int]]:
        """A durable Dedup's changes since the last take: the digests added, concatenated per
        hour bucket, and the hours forgotten since (whose saved digests may go)."""
        new, forgotten = self._new or {}, self._forgotten
        if self._new is not None:
            self._new = {}
        self._forgotten = []
        self._compact()
        return {hour: b"".join(keys) for hour, keys in new.items()}, forgotten

    def _compact(self) -> None:
        """Copy the set of digests into a table sized for it if growth left it sparse.

        Below 50,000 keys a set quadruples its table once three fifths of it are filled:
        just after, a key has ~6.7 slots (~107 bytes of table). A copy is sized to 2–4 slots
        a key, which is what a partition's few tens of thousands of ids would otherwise keep
        until the next growth. Checked once per batch (:meth:`take`); a copy costs about
        what the adds since the last growth did.
        """
        seen = self._seen
        slots = (sys.getsizeof(seen) - _EMPTY_SET) // _SLOT
        if slots > _SPARSE * len(seen):
            self._seen = set(seen)

    def load(self, hour: int, digests: bytes) -> None:
        """Remember the digests :meth:`take` handed over for ``hour`` (a restore). Buckets are
        kept in hour order, so load the hours oldest first."""
        seen = self._seen
        # A chunk at a time, not a digest at a time: a restore loads millions.
        keys = [key for key in dict.fromkeys(digests[start:start + DIGEST]
                                             for start in range(0, len(digests), DIGEST))
                if key not in seen]
        if keys:
            seen.update(keys)
            self._insert(hour, keys)

    def _insert(self, hour: int, keys: list[bytes]) -> None:
        """``_keep``, for an hour that may come before the newest bucket (a restore)."""
        buckets = self._buckets
        for index in range(len(buckets) - 1, -1, -1):
            if buckets[index][0] == hour:
                buckets[index][1].extend(keys)
                return
            if buckets[index][0] < hour:
                buckets.insert(index + 1, (hour, keys))
                break
        else:
            buckets.appendleft((hour, keys))
        self._expires = (buckets[0][0] + 1) * BUCKET
