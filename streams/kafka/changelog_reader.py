"""Reading changelog partitions to given ends for a restore: each key's last committed value.

A restore reads every record a changelog keeps (more than one a key: the cleaner never
compacts a partition's active segment) and keeps the last value of each key. aiokafka's
consumer hands each record over as an object of eleven fields the restore never reads, and
building those cost about half of a fresh node's restore. So the restorer sends its own
fetch requests (aiokafka's client and protocol) and walks each response's record batches
with aiokafka's batch reader, keeping a record's key and value only.

It reads what a ``read_committed`` consumer reads (Kafka's transactions, KIP-98): control
batches (transaction markers) are never records; each fetch response lists the aborted
transactions overlapping what it returns, as (producer id, first offset); a transactional
batch is skipped while its producer has an aborted transaction that began at or before the
batch and whose abort marker has not been passed yet. A partition is read from its start
offset up to its end (its last stable offset when the restore began, so nothing it returns
is undecided); a record at or past the end is left to the consume loop.

The next fetch goes out before a response's records are read (the offsets it asks for come
from the batches' headers), and a partition read to its end is handed to the caller at once
(``done``): the broker reads and sends while this process decodes. A fetch response is
filled partition after partition in the order asked (:data:`PARTITION_BYTES`), so the
partitions end one after another, not all at the last fetch.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FETCH_BYTES", "PARTITION_BYTES", "Read", "read_latest"]

Where = tuple[str, int]  # (topic, partition)

READ_COMMITTED: Final = 1
FETCH_BYTES: Final = 16 * 1024 * 1024
"""The most one fetch response carries: what the restore holds undecoded at once, many of
the producer's batches (512 KiB at most), so a restore makes few round trips."""
PARTITION_BYTES: Final = FETCH_BYTES
"""The most one fetch returns of a partition: all a response may carry, so that the broker,
filling it partition after partition in the order asked, sends one partition until it is
read to its end, then the next; each is rebuilt while the next is fetched."""
MAX_WAIT_MS: Final = 100
"""How long the broker may hold a fetch that finds nothing (a partition whose remaining
offsets hold no committed record yet): the pace at which it is asked again."""
_CONTROL_KEY: Final = struct.Struct(">hh")  # a transaction marker's key: version, type
_ABORT: Final = 0


@dataclass(slots=True)
class _Partition:
    position: int  # the next offset to fetch
    end: int
    latest: dict[bytes | None, bytes | None] = field(default_factory=dict)
    records: int = 0  # records read (committed, in range)

    def ahead(self, data: bytes) -> int:
        """The offset after the last whole batch of a fetch response (its last batch may be
        cut short: it is fetched again)."""
        from aiokafka.record.memory_records import MemoryRecords

        batches = MemoryRecords(data)
        following = self.position
        while batches.has_next():
            batch = batches.next_batch()
            if batch is None:
                break
            following = max(following, batch.next_offset)
        return following

    def take(self, data: bytes, aborted_transactions: list[tuple[int, int]] | None,
             position: int) -> None:
        """Apply the record batches of one fetch response made at ``position``."""
        from aiokafka.errors import CorruptRecordException
        from aiokafka.record.memory_records import MemoryRecords

        batches = MemoryRecords(data)
        # (first offset, producer id), oldest first: a producer joins ``aborting`` once a
        # batch at or past its aborted transaction's first offset comes
        aborted = sorted((first, producer) for producer, first in aborted_transactions or ())
        next_aborted = 0
        aborting: set[int] = set()
        end, latest = self.end, self.latest
        records = 0
        while batches.has_next():
            batch = batches.next_batch()
            if batch is None:  # the response's last batch, cut short: fetched again
                break
            if not batch.validate_crc():
                raise CorruptRecordException(f"a changelog batch at offset {batch.base_offset}"
                                             " fails its checksum")
            base, following = batch.base_offset, batch.next_offset
            producer = batch.producer_id
            if producer is not None and producer >= 0:
                while next_aborted < len(aborted) and aborted[next_aborted][0] <= base:
                    aborting.add(aborted[next_aborted][1])
                    next_aborted += 1
                if batch.is_control_batch:
                    if producer in aborting and _is_abort(batch):
                        aborting.discard(producer)
                    continue
                if batch.is_transactional and producer in aborting:
                    continue
            elif batch.is_control_batch:
                continue
            if following <= position or base >= end:
                continue
            if base >= position and following <= end:
                for record in batch:
                    latest[record.key] = record.value
                    records += 1
            else:  # the batch straddles the start or the end
                for record in batch:
                    if position <= record.offset < end:
                        latest[record.key] = record.value
                        records += 1
        self.records += records


def _is_abort(batch: Any) -> bool:
    for marker in batch:
        key = marker.key
        return key is not None and len(key) >= _CONTROL_KEY.size and \
            _CONTROL_KEY.unpack_from(key)[1] == _ABORT
    return False


@dataclass(slots=True)
class Read:
    """What :func:`read_latest` read: each partition's last value of each key (None for a
    tombstone), and how many records it read for them."""

    latest: dict[Where, dict[bytes | None, bytes | None]]
    records: int


async def read_latest(client: Any, ranges: Mapping[Where, tuple[int, int]], *,
                      partition_bytes: int = PARTITION_BYTES,
                      done: Callable[[Where, dict[bytes | None, bytes | None]], None]
                      | None = None) -> Read:
    """Read each (topic, partition) of ``ranges`` from its start offset to its end, with
    ``client`` (a started :class:`aiokafka.client.AIOKafkaClient`; None when every
    partition starts at its end), at most
    ``partition_bytes`` of a partition a fetch; ``done(where, latest)`` is called for each
    as soon as it is read to its end. Raises a :class:`aiokafka.errors.KafkaError` when a
    fetch fails (the caller tries again, from the start)."""
    reading = {where: _Partition(start, end) for where, (start, end) in ranges.items()}
    finished: set[Where] = set()

    def settle() -> None:
        for where, part in reading.items():
            if where not in finished and part.position >= part.end:
                finished.add(where)
                if done is not None:
                    done(where, part.latest)

    settle()  # a partition with nothing to read (a snapshot at its end) is rebuilt at once
    if len(finished) < len(reading):
        await client.set_topics(sorted({topic for topic, _ in ranges}))
    pending = await _fetch(client, reading, partition_bytes)
    try:
        while pending is not None:
            responses = await pending
            taken = []
            for response in responses:
                for topic, partitions in response.topics:
                    for partition, code, _highwater, *rest in partitions:
                        _raise_for(client, code, topic, partition)
                        part = reading[(topic, partition)]
                        # the aborted transactions' place among the fields moved in v11
                        aborted = rest[2] if response.API_VERSION >= 11 else rest[-2]
                        taken.append((part, rest[-1], aborted, part.position))
                        part.position = part.ahead(rest[-1])
            pending = await _fetch(client, reading, partition_bytes)
            for part, data, aborted, position in taken:
                part.take(data, aborted, position)
            del taken
            settle()
    finally:
        if pending is not None:
            pending.cancel()
    return Read({where: part.latest for where, part in reading.items()},
                sum(part.records for part in reading.values()))


async def _fetch(client: Any, reading: Mapping[Where, _Partition], partition_bytes: int
                 ) -> asyncio.Future[list[Any]] | None:
    """Send a fetch to each leader of the partitions not read to their end, in a stable
    order; their responses to come, or None when every partition is read."""
    from aiokafka.errors import LeaderNotAvailableError
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.structs import TopicPartition

    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
    for (topic, partition), part in sorted(reading.items()):
        if part.position >= part.end:
            continue
        node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if node is None or node < 0:
            await client.force_metadata_update()
            raise LeaderNotAvailableError(f"no leader for {topic}[{partition}]")
        by_node.setdefault(node, {}).setdefault(topic, []).append(
            (partition, part.position, partition_bytes))
    if not by_node:
        return None
    sent = asyncio.gather(*(
        client.send(node, FetchRequest(MAX_WAIT_MS, 1, FETCH_BYTES, READ_COMMITTED,
                                       list(topics.items())))
        for node, topics in by_node.items()))
    await asyncio.sleep(0)  # the requests go out now, not at the caller's next wait
    return sent


def _raise_for(client: Any, code: int, topic: str, partition: int) -> None:
    from aiokafka.errors import NotLeaderForPartitionError, UnknownTopicOrPartitionError
    from aiokafka.errors import for_code as error_for_code

    if code:
        error = error_for_code(code)
        if error in (NotLeaderForPartitionError, UnknownTopicOrPartitionError):
            client.force_metadata_update()  # for the next attempt
        raise error(f"fetching {topic}[{partition}]")
