"""The ledger sink: the engine's output topics, consumed in batches into the ledger.

One batch is one database transaction, and the consumer group's offsets are committed only
after it: a crash in between redelivers the batch. Redelivery changes nothing, twice over:
each partition's highest written offset is kept in ``processed_event`` in the same
transaction (so a redelivered record is skipped), and every write is idempotent by itself
(so even a rewound sink, or a worker that sent an output twice, adds no row).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from sqlalchemy import Connection, Engine, select, tuple_

from closedloop.schemas.decode import Rejection, decode_event
from closedloop.schemas.events import Action
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    Escalation,
    PersonStatus,
    RoundReport,
    UnitStatus,
)
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name
from closedloop.streams.ledger import models, store

__all__ = ["OUTPUT_TOPICS", "SinkRecord", "consume", "group_id", "write_batch"]

log = logging.getLogger("closedloop.sink")

OUTPUT_TOPICS: Final = ("alerts", "daily-report", "round-report", "person-status", "deadletter",
                         "escalations", "action", "unit-status")
"""The topics the ledger records, by short name: the outputs (CONTRACT.md §5), escalations
(a level on the escalated alert's row), operators' actions (the alert's lifecycle) and the
supervised units' findings (v1.2)."""

_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "alerts": msgspec.json.Decoder(Alert),
    "daily-report": msgspec.json.Decoder(DailyReport),
    "round-report": msgspec.json.Decoder(RoundReport),
    "person-status": msgspec.json.Decoder(PersonStatus),
    "deadletter": msgspec.json.Decoder(DeadLetter),
    "escalations": msgspec.json.Decoder(Escalation),
    "unit-status": msgspec.json.Decoder(UnitStatus),
}
_MARKS: Final = models.Base.metadata.tables["processed_event"]
DEFAULT_CATCHUP: Final = 24 * 3600  # the contract's catchup_within


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One consumed output record: ``name`` is the short topic name, ``topic`` the full one."""

    name: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def group_id(prefix: str) -> str:
    return f"{prefix}-ledger-sink"


def _marks(connection: Connection, records: Sequence[SinkRecord]) -> dict[tuple[str, int], int]:
    positions = {(r.topic, r.partition) for r in records}
    if not positions:
        return {}
    rows = connection.execute(
        select(_MARKS.c.topic, _MARKS.c.partition, _MARKS.c.offset).where(
            tuple_(_MARKS.c.topic, _MARKS.c.partition).in_(sorted(positions))
        )
    )
    return {(topic, partition): offset for topic, partition, offset in rows}


def _advance_marks(connection: Connection, records: Sequence[SinkRecord], now: datetime) -> None:
    highest: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        highest[key] = max(highest.get(key, -1), r.offset)
    if not highest:
        return
    statement = store.upsert_insert(connection, _MARKS)
    statement = statement.on_conflict_do_update(
        index_elements=["topic", "partition"],
        set_={"offset": statement.excluded.offset, "updated_at": statement.excluded.updated_at},
        where=_MARKS.c.offset < statement.excluded.offset,
    )
    connection.execute(statement, [
        {"topic": topic, "partition": partition, "offset": offset, "updated_at": now}
        for (topic, partition), offset in sorted(highest.items())
    ])


def write_batch(
    connection: Connection, records: Sequence[SinkRecord], now: datetime | None = None,
    catchup_within: int = DEFAULT_CATCHUP,
) -> Counter[str]:
    """Write one consumed batch in the caller's transaction; returns what it did, by counter.

    Records at or below their partition's mark were written before and are skipped. A record
    that does not decode as its topic's output is counted and skipped (it is logged with its
    position, never its bytes): one bad record must not stop the ledger. ``catchup_within``
    (the policy's, in seconds) closes round_missed alerts whose person was caught up.
    """
    now = now or datetime.now(UTC)
    counts: Counter[str] = Counter()
    marks = _marks(connection, records)
    alerts: list[Alert] = []
    reports: list[DailyReport] = []
    round_reports: list[RoundReport] = []
    people: dict[str, PersonStatus | None] = {}
    letters: list[DeadLetter] = []
    escalations: list[Escalation] = []
    actions: list[Action] = []
    units: list[UnitStatus] = []
    for record in records:
        if record.offset <= marks.get((record.topic, record.partition), -1):
            counts["redelivered"] += 1
            continue
        try:
            if record.name == "person-status" and record.value is None:
                if record.key is not None:  # a tombstone: the person's state was forgotten
                    people[record.key.decode()] = None
                continue
            if record.name == "unit-status" and record.value is None:
                continue  # a unit forgotten by the engine: the ledger keeps its findings
            if record.value is None:
                raise msgspec.ValidationError("no value")
            item = _decode(record.name, record.value)
        except (msgspec.MsgspecError, KeyError, UnicodeDecodeError) as exc:
            counts[f"undecodable:{record.name}"] += 1
            log.warning("skipping %s/%d/%d: %s", record.topic, record.partition, record.offset,
                        exc)
            continue
        if isinstance(item, Escalation):
            escalations.append(item)
        elif isinstance(item, Action):
            actions.append(item)
        elif isinstance(item, Alert):
            alerts.append(item)
        elif isinstance(item, DailyReport):
            reports.append(item)
        elif isinstance(item, RoundReport):
            round_reports.append(item)
        elif isinstance(item, PersonStatus):
            people[item.person_id] = item
        elif isinstance(item, DeadLetter):
            letters.append(item)
        elif isinstance(item, UnitStatus):
            units.append(item)
    counts["alerts_new"] += store.add_alerts(connection, alerts)
    counts["alerts_seen"] += len(alerts)
    counts["reports"] += store.upsert_reports(connection, reports)
    counts["round_reports"] += store.upsert_round_reports(connection, round_reports)
    upserted, deleted = store.put_person_states(connection, people)
    counts["person_states"] += upserted
    counts["person_tombstones"] += deleted
    counts["dead_letters_new"] += store.add_dead_letters(connection, letters, now)
    counts["findings"] += store.put_unit_statuses(connection, units)
    # After the alerts of the same batch, so an action or escalation finds its row.
    for action in actions:
        outcome, reason = store.apply_action(connection, store.action_record(action, "kafka"))
        counts[f"actions_{outcome}" if reason is None else f"actions_ignored:{reason}"] += 1
    counts["escalations"] += store.note_escalations(connection, escalations)
    # Either may come first: a person's catch-up sampling, or the alert it closes.
    counts["caught_up"] += store.close_caught_up(
        connection, [*(p for p, s in people.items() if s is not None),
                     *(a.subject for a in alerts if a.kind == "round_missed")],
        catchup_within)
    _advance_marks(connection, records, now)
    return +counts


def _decode(name: str, value: bytes) -> Any:
    """An output record by its model; an action through the input decoder, whose
    raw-identifier check keeps a phone number in a note out of the ledger."""
    if name != "action":
        return _DECODERS[name].decode(value)
    event = decode_event(name, value, {})
    if isinstance(event, Rejection):
        raise msgspec.ValidationError(f"{event.reason}: {event.message}")
    return event


def _records(batch: dict[Any, list[Any]], names: dict[str, str]) -> list[SinkRecord]:
    """kafka-python's poll result as SinkRecords, in offset order within each partition."""
    return [
        SinkRecord(names[tp.topic], tp.topic, tp.partition, r.offset, r.key, r.value)
        for tp, rows in batch.items()
        for r in rows
    ]


def consume(
    engine: Engine,
    settings: KafkaSettings,
    *,
    from_beginning: bool = False,
    idle_exit: float | None = None,
    stop: threading.Event | None = None,
    max_records: int = 2000,
    catchup_within: int = DEFAULT_CATCHUP,
) -> Counter[str]:
    """Run the sink until ``stop`` is set or no record came for ``idle_exit`` seconds.

    ``from_beginning`` rewinds every assigned partition once, at the first assignment: a
    re-run over the whole retention, which the marks make harmless.
    """
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.errors import CommitFailedError

    names = {topic_name(settings.prefix, name): name for name in OUTPUT_TOPICS}
    consumer = KafkaConsumer(
        group_id=group_id(settings.prefix),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A sink started before the worker must not create the worker's topics with the
        # broker's default partition count: the worker refuses topics it did not size.
        allow_auto_create_topics=False,
        max_poll_records=max_records,
        isolation_level="read_committed",  # the worker writes in transactions
        **settings.kafka_python(),
    )

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        idle_since = time.monotonic()
        rewind = from_beginning

        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            self.idle_since = time.monotonic()  # joining the group is not idleness
            if self.rewind and assigned:
                consumer.seek_to_beginning(*assigned)
                self.rewind = False

    listener = Listener()

    totals: Counter[str] = Counter()
    try:
        consumer.subscribe(sorted(names), listener=listener)
        while stop is None or not stop.is_set():
            batch = consumer.poll(timeout_ms=500)
            records = _records(batch, names)
            if records:
                with engine.begin() as connection:
                    totals.update(write_batch(connection, records,
                                              catchup_within=catchup_within))
                try:
                    consumer.commit()
                except CommitFailedError as exc:  # a rebalance: the batch comes again, skipped
                    log.warning("offset commit failed, the batch will be redelivered: %s", exc)
                listener.idle_since = time.monotonic()
                totals["records"] += len(records)
            elif idle_exit is not None and time.monotonic() - listener.idle_since >= idle_exit:
                break
    finally:
        consumer.close(autocommit=False)
    return totals


def summary(counts: Iterable[tuple[str, int]]) -> str:
    """A one-line account of a sink run."""
    return "ledger sink: " + (", ".join(f"{k} {v:,}" for k, v in sorted(counts)) or "nothing")
