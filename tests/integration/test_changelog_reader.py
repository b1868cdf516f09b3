"""The restorer's changelog reader on the real broker reads what a ``read_committed``
consumer reads, each key's last value: an aborted transaction whose batches lie between
committed ones (and across fetches) is skipped, transaction markers are no records, a
transaction still open past the end is left out, and a read from an offset inside a batch
starts there."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kafka.admin import NewTopic

from closedloop.streams.kafka.changelog_reader import read_latest

FILLER = b"x" * 1_000
SMALL_FETCH = 64 * 1024  # many fetches a partition, each a few batches


def test_the_reader_reads_what_a_read_committed_consumer_reads(
        kafka_bootstrap: str, kafka_admin: Any) -> None:
    topic = f"it{uuid.uuid4().hex[:10]}-changelog"
    kafka_admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                        topic_configs={"cleanup.policy": "compact"})])
    try:
        asyncio.run(_scenario(kafka_bootstrap, topic))
    finally:
        kafka_admin.delete_topics([topic])


async def _scenario(bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    def producer(name: str) -> Any:
        return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_batch_size=16 * 1024, linger_ms=1,
                                transactional_id=f"{topic}-{name}")

    committer, aborter, lingerer = producer("c"), producer("a"), producer("o")
    for p in (committer, aborter, lingerer):
        await p.start()
    try:
        async def write(p: Any, pairs: list[tuple[bytes, bytes | None, int]]) -> list[int]:
            futures = [await p.send(topic, value, key=key, partition=partition)
                       for key, value, partition in pairs]
            await p.flush()
            return [(await f).offset for f in futures]

        async with committer.transaction():
            await write(committer, [(b"k1", b"a1", 0), (b"k2", b"b1", 0), (b"k9", b"z1", 1)])
        await aborter.begin_transaction()
        await write(aborter, [(b"k1", b"ABORTED", 0), (b"k3", b"ABORTED", 0)]
                    + [(b"n%d" % i, b"ABORTED" + FILLER, i % 2) for i in range(500)])
        async with committer.transaction():
            first = await write(committer, [(b"k2", b"b2", 0), (b"k4", b"d1", 0)]
                                + [(b"n%d" % i, b"c1" + FILLER, i % 2) for i in range(500)])
        await write(aborter, [(b"n%d" % i, b"ABORTED" + FILLER, i % 2)
                              for i in range(500, 1_000)])
        await aborter.abort_transaction()
        async with committer.transaction():
            await write(committer, [(b"k3", b"c1", 0), (b"k4", None, 0)]
                        + [(b"n%d" % i, b"c2" + FILLER, i % 2) for i in range(250, 750)])
        await lingerer.begin_transaction()  # open past the end: not read
        await write(lingerer, [(b"k1", b"OPEN", 0), (b"k9", b"OPEN", 1)])

        ends = await _ends(bootstrap, topic)
        expected_0 = {b"k1": b"a1", b"k2": b"b2", b"k3": b"c1", b"k4": None} | {
            b"n%d" % i: (b"c2" if 250 <= i < 750 else b"c1") + FILLER
            for i in range(0, 500, 2)} | {
            b"n%d" % i: b"c2" + FILLER for i in range(500, 750, 2)}
        read = await _read(bootstrap, {(topic, 0): (0, ends[0]), (topic, 1): (0, ends[1])})
        assert read.latest[(topic, 0)] == expected_0
        assert read.latest[(topic, 1)][b"k9"] == b"z1"
        reference = await _reference(bootstrap, topic, {0: 0, 1: 0}, ends)
        assert read.latest == {(topic, p): latest for p, (latest, _) in reference.items()}
        assert read.records == sum(count for _, count in reference.values())

        # from offsets inside a batch: the records before them are not read
        inside = {0: first[0] + 1, 1: first[5]}  # k4's; n3's, after n1's
        read = await _read(bootstrap, {(topic, p): (at, ends[p]) for p, at in inside.items()})
        reference = await _reference(bootstrap, topic, inside, ends)
        assert b"k2" not in read.latest[(topic, 0)]  # its record lies before the start
        assert read.latest == {(topic, p): latest for p, (latest, _) in reference.items()}
        assert read.records == sum(count for _, count in reference.values())
        await lingerer.abort_transaction()
    finally:
        for p in (committer, aborter, lingerer):
            await p.stop()


async def _read(bootstrap: str, ranges: dict[tuple[str, int], tuple[int, int]]) -> Any:
    """The reader's result, checked against what it handed over partition by partition."""
    from aiokafka.client import AIOKafkaClient

    handed: list[tuple[tuple[str, int], dict[bytes | None, bytes | None]]] = []
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        read = await read_latest(client, ranges, partition_bytes=SMALL_FETCH,
                                 done=lambda where, latest: handed.append((where, dict(latest))))
    finally:
        await client.close()
    assert sorted(where for where, _ in handed) == sorted(ranges)  # each once, when read
    assert dict(handed) == read.latest
    return read


async def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in (0, 1)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def _reference(bootstrap: str, topic: str, starts: dict[int, int], ends: dict[int, int]
                     ) -> dict[int, tuple[dict[bytes | None, bytes | None], int]]:
    """What aiokafka's read_committed consumer reads from each start to each end: each key's
    last value, and the records."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {p: TopicPartition(topic, p) for p in starts}
        consumer.assign(list(tps.values()))
        found: dict[int, tuple[dict[bytes | None, bytes | None], int]] = {}
        for p, tp in tps.items():
            consumer.seek(tp, starts[p])
            latest: dict[bytes | None, bytes | None] = {}
            count = 0
            while await consumer.position(tp) < ends[p]:
                for m in (await consumer.getmany(tp, timeout_ms=1_000)).get(tp, ()):
                    if m.offset < ends[p]:
                        latest[m.key] = m.value
                        count += 1
            found[p] = (latest, count)
        return found
    finally:
        await consumer.stop()
