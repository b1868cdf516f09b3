"""The worker's sender on the real broker: a transaction that writes more than the bound of
unacknowledged bytes waits for acknowledgements on the way, and still commits every record
in order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kafka.admin import NewTopic

from closedloop.streams.kafka.loop import _Sender

BOUND = 100_000
VALUES = [b"%06d" % i + b"x" * 1_000 for i in range(2_000)]  # ~2 MB: twenty times the bound


def test_a_transaction_past_the_unacknowledged_bound_commits_every_record_in_order(
        kafka_bootstrap: str, kafka_admin: Any) -> None:
    topic = f"it{uuid.uuid4().hex[:10]}-sender"
    kafka_admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        waits = asyncio.run(_write(kafka_bootstrap, topic))
        assert waits > 0  # the bound was reached, and waited on
        assert asyncio.run(_read(kafka_bootstrap, topic)) == VALUES
    finally:
        kafka_admin.delete_topics([topic])


async def _write(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_batch_size=64 * 1024, transactional_id=topic)
    await producer.start()
    try:
        sender = _Sender(producer, max_unacked=BOUND)
        async with producer.transaction():
            for value in VALUES:
                await sender.add(topic, 0, None, value)
            await sender.flush()
        return sender.waits
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        where = TopicPartition(topic, 0)
        consumer.assign([where])
        end = (await consumer.end_offsets([where]))[where]
        values: list[bytes] = []
        while await consumer.position(where) < end:
            fetched = await consumer.getmany(where, timeout_ms=1_000)
            values.extend(m.value for m in fetched.get(where, ()) if m.value is not None)
        return values
    finally:
        await consumer.stop()
