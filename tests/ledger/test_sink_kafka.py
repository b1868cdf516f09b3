"""``closedloop sink`` on the real broker and PostgreSQL: a re-run from the beginning of the
topics changes no row, and a run after it writes only what is new."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from kafka import KafkaProducer
from kafka.admin import NewTopic
from ledger_samples import alert, letter, report, status
from sqlalchemy import select

from closedloop.streams.kafka.topics import topic_name
from closedloop.streams.ledger import models
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.sink import OUTPUT_TOPICS, group_id

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(kafka_admin: Any) -> Iterator[str]:
    """A fresh topic prefix with the output topics (2 partitions each); removed afterwards."""
    name = f"ledger{uuid.uuid4().hex[:10]}"
    topics = [topic_name(name, t) for t in OUTPUT_TOPICS]
    kafka_admin.create_topics([NewTopic(t, 2, 1) for t in topics])
    yield name
    kafka_admin.delete_topics(topics)
    delete_groups = getattr(kafka_admin, "delete_groups", None) or (
        kafka_admin.delete_consumer_groups)
    delete_groups([group_id(name)])


def sink(prefix: str, bootstrap: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLOSEDLOOP_KAFKA": bootstrap, "CLOSEDLOOP_TOPIC_PREFIX": prefix}
    return subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "sink", "--url", url, "--idle-exit",
         "2", *extra],
        env=env, capture_output=True, text=True, timeout=60,
    )


def counts(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The sink's closing line, ``ledger sink: alerts_new 1, records 3``, as a dict."""
    assert run.returncode == 0, run.stderr
    line = run.stderr.strip().splitlines()[-1].removeprefix("ledger sink: ")
    return {name: int(value.replace(",", "")) for name, value in
            (item.rsplit(" ", 1) for item in line.split(", ") if item != "nothing")}


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(map(tuple, connection.execute(select(*[
                    c for c in table.columns if c.name not in ("updated_at", "received_at")
                ])).all()), key=repr)
                for table in models.Base.metadata.sorted_tables
                if table.name != "processed_event"
            }
    finally:
        engine.dispose()


def test_sink_rerun_from_the_beginning_changes_nothing(
    prefix: str, kafka_bootstrap: str, pg_schema_url: str
) -> None:
    refused = sink(prefix, kafka_bootstrap, pg_schema_url)
    assert refused.returncode == 1 and "closedloop db upgrade" in refused.stderr

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    encode = msgspec.json.encode

    def send(name: str, key: str | None, value: Any) -> None:
        producer.send(topic_name(prefix, name), key=None if key is None else key.encode(),
                      value=None if value is None else encode(value))

    first = alert(1)
    for item in (first, alert(2, "district-b"), first):  # the worker sent one twice
        send("alerts", item.subject, item)
    send("daily-report", "district-a", report("district-a"))
    send("daily-report", "district-b", report("district-b"))
    send("person-status", "person-0001", status("person-0001", "2022-09-07T08:00:00+08:00"))
    send("person-status", "person-0002", status("person-0002", "2022-09-07T08:00:00+08:00"))
    send("person-status", "person-0002", None)  # forgotten
    send("deadletter", None, letter(42))
    producer.flush()

    subprocess.run([sys.executable, "-m", "closedloop.streams.cli", "db", "upgrade", "--url",
                    pg_schema_url], check=True, capture_output=True, timeout=60)
    assert counts(sink(prefix, kafka_bootstrap, pg_schema_url))["records"] == 9
    written = rows(pg_schema_url)
    assert len(written["alert"]) == 2
    assert len(written["daily_report"]) == 2
    assert [r[0] for r in written["person_state"]] == ["person-0001"]
    assert len(written["dead_letter"]) == 1

    again = counts(sink(prefix, kafka_bootstrap, pg_schema_url, "--from-beginning"))
    assert again == {"records": 9, "redelivered": 9}
    assert rows(pg_schema_url) == written

    send("alerts", "person-0003", alert(3))
    producer.flush()
    producer.close()
    later = counts(sink(prefix, kafka_bootstrap, pg_schema_url))  # offsets were committed
    assert later == {"records": 1, "alerts_new": 1, "alerts_seen": 1}
    assert len(rows(pg_schema_url)["alert"]) == 3
