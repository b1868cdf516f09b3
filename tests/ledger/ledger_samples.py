"""Output records as the worker writes them, for the ledger tests."""

from __future__ import annotations

from typing import Any

import msgspec

from closedloop.schemas.ids import alert_id
from closedloop.schemas.outputs import Alert, DailyReport, DeadLetter, PersonStatus
from closedloop.streams.kafka.topics import topic_name
from closedloop.streams.ledger.sink import SinkRecord

PREFIX = "unit"


def alert(n: int, district: str = "district-a", kind: str = "test_missed") -> Alert:
    subject = f"person-{n:04d}"
    due = f"2022-09-07T{n % 24:02d}:00:00+08:00"
    return Alert(
        alert_id=alert_id(kind, subject, 1662480000 + n * 3600), kind=kind,  # type: ignore[arg-type]
        subject=subject, person_id=subject, tube_id=None, district=district, due_at=due,
        raised_at=due, details={"requirement": "travel", "n": n},
    )


def report(district: str, day: str = "2022-09-07", pushed: int = 3) -> DailyReport:
    return DailyReport(district=district, date=day, pushed=pushed, located=2, under_control=5,
                       followup_overdue_open=1, tests_missed=4, positives=0)


def status(person: str, updated_at: str, district: str = "district-a") -> PersonStatus:
    return PersonStatus(person_id=person, district=district, updated_at=updated_at,
                        under_control=True, push=None, cohorts=["cold_chain"],
                        open_requirements=["cohort:cold_chain"], last_sampled_at=None,
                        last_result=None)


def letter(offset: int | None, line: int | None = None) -> DeadLetter:
    return DeadLetter(
        reason="raw_identifier", message="person_id looks like a raw identifier",
        topic=None if offset is None else topic_name(PREFIX, "travel"),
        partition=None if offset is None else 0, offset=offset, line=line,
        original='{"person_id": "[redacted]"}', original_encoding="utf-8",
    )


class Partition:
    """Appends records to one partition of an output topic, numbering offsets like Kafka."""

    def __init__(self, name: str, partition: int = 0) -> None:
        self.name, self.partition, self.next = name, partition, 0

    def record(self, value: Any, key: str | None = None) -> SinkRecord:
        data = None if value is None else msgspec.json.encode(value)
        record = SinkRecord(self.name, topic_name(PREFIX, self.name), self.partition, self.next,
                            None if key is None else key.encode(), data)
        self.next += 1
        return record
