"""The real services answer and carry the contract's data: Kafka 4 and PostgreSQL.

Not engine tests: they prove that the broker started by ``make services`` accepts a topic,
round-trips a contract event byte for byte through a consumer group, and that PostgreSQL takes
a SQLAlchemy 2 model. Names are unique per run, so reruns and a dirty broker never collide.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from sqlalchemy import BigInteger, DateTime, String, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from closedloop.schemas.decode import Rejection, dead_letter, decode_event
from closedloop.schemas.events import KEY_FIELD, Sampling
from closedloop.schemas.outputs import DeadLetter

PARTITIONS = 3
CONSUME_TIMEOUT_S = 30.0

SAMPLING = {
    "event_id": "it-sampling-0001",
    "occurred_at": "2022-09-06T09:30:00+08:00",
    "person_id": "p:9f2c1a7e44",
    "tube_id": "T-2022-0906-0001",
    "site_id": "site-huangpu-12",
    "district": "Huangpu",
    "pool_size": 10,
    "site_lat": 31.2304,
    "site_lon": 121.4737,
    "reason": "routine",
}


def contract_topic(prefix: str, name: str) -> str:
    """CONTRACT.md §3: ``{prefix}.{name}.v1``."""
    return f"{prefix}.{name}.v1"


@pytest.fixture
def topic_prefix(kafka_admin: Any) -> Iterator[str]:
    """A run-unique topic prefix; the topics made under it are deleted afterwards."""
    prefix = f"closedloop-it-{uuid.uuid4().hex[:10]}"
    yield prefix
    mine = [t for t in kafka_admin.list_topics() if t.startswith(prefix + ".")]
    if mine:
        kafka_admin.delete_topics(mine)


def create_topic(admin: Any, name: str, partitions: int = PARTITIONS) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)], wait_for_metadata=True)
    [described] = admin.describe_topics([name])
    assert len(described["partitions"]) == partitions


def produce(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
    """Send one record and wait for the broker's ack; returns (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        meta = producer.send(topic, key=key, value=value).get(timeout=CONSUME_TIMEOUT_S)
    finally:
        producer.close()
    return meta.partition, meta.offset


def consume_one(bootstrap: str, topic: str) -> Any:
    """Join a fresh consumer group on ``topic`` and return the first record it gets."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.it-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if records:
                    return records[0]
        pytest.fail(f"no record came back from {topic} within {CONSUME_TIMEOUT_S:.0f} s")
    finally:
        consumer.close()


def test_sampling_event_round_trips_through_kafka(
    kafka_bootstrap: str, kafka_admin: Any, topic_prefix: str
) -> None:
    topic = contract_topic(topic_prefix, "sampling")
    create_topic(kafka_admin, topic)
    raw = orjson.dumps(SAMPLING)
    key = SAMPLING[KEY_FIELD["sampling"]].encode()

    partition, offset = produce(kafka_bootstrap, topic, key, raw)
    record = consume_one(kafka_bootstrap, topic)

    assert (record.partition, record.offset) == (partition, offset)
    assert record.key == b"T-2022-0906-0001"
    assert record.value == raw
    decoded = decode_event("sampling", record.value)
    assert not isinstance(decoded, Rejection), decoded
    assert isinstance(decoded, Sampling)
    expected = {**SAMPLING, "occurred_at": datetime.fromisoformat(SAMPLING["occurred_at"])}
    assert msgspec.structs.asdict(decoded) == expected
    # Same instant is not enough: the producer's offset must survive too.
    assert decoded.occurred_at.utcoffset() == timedelta(hours=8)


def test_not_json_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, kafka_admin: Any, topic_prefix: str
) -> None:
    source = contract_topic(topic_prefix, "sampling")
    deadletter = contract_topic(topic_prefix, "deadletter")
    create_topic(kafka_admin, source)
    create_topic(kafka_admin, deadletter, partitions=1)
    raw = b'{"event_id": "it-broken", "occurred_at": '

    produce(kafka_bootstrap, source, b"T-broken", raw)
    record = consume_one(kafka_bootstrap, source)
    rejection = decode_event("sampling", record.value)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "not_json"

    letter = dead_letter(
        rejection, record.value, topic=source, partition=record.partition, offset=record.offset
    )
    produce(kafka_bootstrap, deadletter, None, msgspec.json.encode(letter))
    back = msgspec.json.decode(consume_one(kafka_bootstrap, deadletter).value, type=DeadLetter)

    assert back == letter
    assert back.reason == "not_json"
    assert (back.topic, back.partition, back.offset) == (source, record.partition, record.offset)
    assert (back.original, back.original_encoding) == (raw.decode(), "utf-8")


# A run-unique table name: the model lives only in this test and leaves nothing behind.
_TABLE = f"it_processed_event_{uuid.uuid4().hex[:8]}"


class Base(DeclarativeBase):
    pass


class ProcessedEvent(Base):
    """The de-duplication key of CONTRACT.md §3, (topic, event_id), as a primary key."""

    __tablename__ = _TABLE

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int]
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def test_postgres_stores_and_reads_a_model(pg_url: str) -> None:
    engine = create_engine(pg_url)
    assert engine.dialect.name == "postgresql"
    Base.metadata.create_all(engine)
    try:
        at = datetime(2022, 9, 6, 9, 30, tzinfo=timezone(timedelta(hours=8)))
        with Session(engine) as session, session.begin():
            session.add(
                ProcessedEvent(
                    topic="closedloop.sampling.v1",
                    event_id="it-sampling-0001",
                    partition=2,
                    offset=2**40,
                    processed_at=at,
                )
            )

        with Session(engine) as session:
            row = session.scalars(select(ProcessedEvent)).one()
            assert (row.topic, row.event_id) == ("closedloop.sampling.v1", "it-sampling-0001")
            assert (row.partition, row.offset) == (2, 2**40)
            assert row.processed_at == at
            assert row.processed_at.astimezone(UTC).hour == 1

        # The same (topic, event_id) twice is refused: the key really is unique in PostgreSQL.
        with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
            session.add(
                ProcessedEvent(
                    topic="closedloop.sampling.v1",
                    event_id="it-sampling-0001",
                    partition=0,
                    offset=0,
                    processed_at=at,
                )
            )
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()
