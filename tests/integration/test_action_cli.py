"""``closedloop alerts ack|resolve`` on the real broker: one action event, keyed by subject."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from closedloop.schemas.decode import decode_event
from closedloop.schemas.events import Action
from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert
from closedloop.streams.cli import main
from closedloop.streams.kafka.topics import topic_name, topic_specs
from closedloop.streams.ledger import store
from closedloop.streams.ledger.engine import open_engine

PERSON = "pz:0f8e7d6c5b4a3928"
ALERT_ID = alert_id("unlocated", PERSON, 1662433200)


@pytest.fixture
def prefix(kafka_admin: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Iterator[str]:
    """A fresh prefix (with 3 partitions a topic, declared by the command) on the test broker,
    which is what actions go to by default when CLOSEDLOOP_KAFKA is set; removed afterwards.
    The command runs in an empty directory with no ledger configured: the default ledger
    (``closedloop.db`` there), which ``closedloop demo`` leaves in a checkout, would be
    consulted for the alert's subject."""
    name = f"act{uuid.uuid4().hex[:10]}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLOSEDLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("CLOSEDLOOP_KAFKA", kafka_bootstrap)
    monkeypatch.delenv("CLOSEDLOOP_ACTIONS_VIA", raising=False)
    monkeypatch.setenv("CLOSEDLOOP_TOPIC_PREFIX", name)
    monkeypatch.setenv("CLOSEDLOOP_PARTITIONS", "3")
    yield name
    existing = set(kafka_admin.list_topics())  # a refused action declares nothing
    created = [s.address for s in topic_specs(name, 3, 1) if s.address in existing]
    if created:
        kafka_admin.delete_topics(created)


def read_actions(bootstrap: str, prefix: str) -> list[Any]:
    address = topic_name(prefix, "action")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(address, p) for p in range(3)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return list(consumer)
    finally:
        consumer.close()


def test_ack_publishes_one_action_keyed_by_subject(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # when an operator acks an alert, naming its subject
    code = main(["alerts", "ack", ALERT_ID, "--operator", "op-017", "--subject", PERSON,
                 "--note", "on my way"])
    # then one action record, keyed by the subject, that the engine's decoder accepts
    assert code == 0, capsys.readouterr().err
    [record] = read_actions(kafka_bootstrap, prefix)
    assert record.key == PERSON.encode()
    event = decode_event("action", record.value)
    assert isinstance(event, Action)
    assert (event.alert_id, event.subject, event.action, event.operator_id, event.note) == (
        ALERT_ID, PERSON, "ack", "op-017", "on my way")
    offset = event.occurred_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 8 * 3600  # the policy's zone
    assert abs((datetime.now(event.occurred_at.tzinfo) - event.occurred_at).total_seconds()) < 60


def test_resolve_finds_the_subject_in_the_ledger(
    prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # given a ledger holding the alert
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert main(["db", "upgrade", "--url", url]) == 0
    engine = open_engine(url)
    with engine.begin() as connection:
        store.add_alerts(connection, [Alert(
            alert_id=ALERT_ID, kind="unlocated", subject=PERSON, person_id=PERSON, tube_id=None,
            district="district-a", due_at="2022-09-06T11:00:00+08:00",
            raised_at="2022-09-06T11:00:00+08:00", details={},
        )])
    engine.dispose()
    # when it is resolved without --subject, and an ack is sent twice: two events
    assert main(["alerts", "resolve", ALERT_ID, "--operator", "op-017", "--ledger", url]) == 0
    assert main(["alerts", "ack", ALERT_ID, "--operator", "op-017", "--ledger", url]) == 0
    # then both are keyed by the subject found there, each with a fresh event_id
    records = read_actions(kafka_bootstrap, prefix)
    assert {r.key for r in records} == {PERSON.encode()}
    events = [decode_event("action", r.value) for r in records]
    assert sorted(e.action for e in events if isinstance(e, Action)) == ["ack", "resolve"]
    assert len({e.event_id for e in events if isinstance(e, Action)}) == 2


def test_no_subject_anywhere_is_a_clear_error(
    prefix: str, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given no --subject and no ledger at the given URL
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    # when an operator acks
    code = main(["alerts", "ack", ALERT_ID, "--operator", "op-017", "--ledger", missing])
    # then exit 2, a message that says to pass --subject, and nothing published
    assert code == 2
    assert "--subject" in capsys.readouterr().err
    assert read_actions(kafka_bootstrap, prefix) == []


def test_a_raw_identifier_as_operator_is_refused_and_not_echoed(
    prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mobile = "13812345678"
    code = main(["alerts", "ack", ALERT_ID, "--operator", mobile, "--subject", PERSON])
    err = capsys.readouterr().err
    assert code == 2
    assert "operator_id" in err and mobile not in err
    assert read_actions(kafka_bootstrap, prefix) == []
