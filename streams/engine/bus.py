"""The worker's multi-partition path without a broker: the stage runners over in-memory logs.

A test driver, like the embedded one, but shaped like the Kafka deployment: every topic has
``partitions`` logs, inputs are keyed onto them as ``closedloop produce`` does, each stage
reads the topics :data:`~closedloop.streams.engine.topology.TOPOLOGY` wires it to through
:func:`~closedloop.streams.engine.records.handle_record`, and what a delivery produced goes,
coalesced by a :class:`~closedloop.streams.engine.records.Batch` as the worker coalesces a
consumer batch, to the logs of the internal topics (packs of forwards and contributions,
clock marks to every downstream partition, ticks). Only the consumer is
simulated: which (stage, topic, partition) hands over its next records is chosen by
``order``, so the same input can be delivered in many interleavings, as Kafka may.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from closedloop.agents.state import Keyed
from closedloop.schemas.decode import (
    RECEIVED_AT_HEADER,
    Rejection,
    dead_letter,
    envelope_receipt,
    header_value,
)
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    Escalation,
    PersonStatus,
    RoundReport,
)
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.envelopes import Refused, publishable
from closedloop.streams.engine.records import Batch, Record, handle_record, tick_record
from closedloop.streams.engine.stage_runner import runners
from closedloop.streams.engine.store import StageStore
from closedloop.streams.engine.topology import TOPOLOGY, partition_of
from closedloop.streams.kafka.receipts import record_receipt

__all__ = ["BusOutputs", "PartitionedBus"]


_decode_alert = msgspec.json.Decoder(Alert).decode
_decode_escalation = msgspec.json.Decoder(Escalation).decode
_decode_report = msgspec.json.Decoder(DailyReport).decode
_decode_letter = msgspec.json.Decoder(DeadLetter).decode
_decode_status = msgspec.json.Decoder(PersonStatus).decode
_decode_round = msgspec.json.Decoder(RoundReport).decode


@dataclass(slots=True)
class BusOutputs:
    """What reached the output topics, in the order it was sent."""

    alerts: list[Alert] = field(default_factory=list)
    escalations: list[Alert] = field(default_factory=list)
    reports: list[DailyReport] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    status: dict[str, PersonStatus | None] = field(default_factory=dict)  # compacted: latest
    round_reports: list[RoundReport] = field(default_factory=list)


class PartitionedBus:
    """Three stage runners on ``partitions`` in-memory partitions of every topic.

    ``order`` picks the interleaving: ``"fifo"`` delivers one record at a time from the
    stages' queues in turn; ``"reverse"`` drains the queues in the opposite turn, in batches;
    any other string seeds a random choice of queue and batch size. ``received_at`` is the
    timestamp every record gets, as the broker would stamp it, and the instant the worker
    reads it at (the receipt of §1's rules); an input record carries the ``received_at``
    header ``closedloop produce`` gives it, read as the worker reads it.
    """

    def __init__(self, policy: Policy, partitions: int = 4, order: str = "fifo",
                 received_at: float | None = None) -> None:
        self.policy = policy
        self.n = partitions
        self.logs: dict[tuple[str, int], list[Record]] = {}
        self.read: dict[tuple[str, str, int], int] = {}  # (stage, topic, partition) -> next
        self.stores: dict[str, StageStore] = {}  # a dict per partition, as the worker's
        self.runners = runners(policy, partitions, self._store)
        self.out = BusOutputs()
        self._order = order
        self._received_at = received_at  # the records' timestamp (None: not checked)
        self._rng = random.Random(order)
        self._turn = 0

    # -- producing ----------------------------------------------------------------------------

    def produce(self, lines: Iterable[bytes]) -> None:
        """Publish replay lines as ``closedloop produce`` does: keyed onto their partition."""
        for number, line in enumerate(lines, start=1):
            record = publishable(line)
            if record is None:
                continue
            if isinstance(record, Refused):
                self.out.dead_letters.append(dead_letter(
                    record.rejection, line.rstrip(b"\r\n"), topic=record.topic, line=number))
                continue
            receipt = envelope_receipt(line.rstrip(b"\r\n"))
            if isinstance(receipt, Rejection):
                self.out.dead_letters.append(dead_letter(
                    receipt, line.rstrip(b"\r\n"), topic=record.topic, line=number))
                continue
            partition = 0 if record.key is None else partition_of(record.key.decode(), self.n)
            self._append(record.topic, partition, record.key, record.value,
                         header_value(receipt))

    def tick(self, at: int) -> None:
        """``clock --until``: a tick to every stage partition, after the inputs sent so far."""
        for name in TOPOLOGY.ticks:
            stage = TOPOLOGY.readers[name][0]
            after = {topic: {str(p): len(self.logs.get((topic, p), ())) for p in range(self.n)}
                     for topic in TOPOLOGY.wiring[stage].inputs}
            for partition in range(self.n):
                self._append(name, partition, None, tick_record(at, after))

    # -- consuming ----------------------------------------------------------------------------

    def run(self) -> BusOutputs:
        """Deliver every record to every stage that reads it, until nothing is left."""
        while True:
            ready = [(stage, topic, p) for (topic, p), log in self.logs.items()
                     for stage in TOPOLOGY.readers.get(topic, ())
                     if self.read.get((stage, topic, p), 0) < len(log)]
            if not ready:
                return self.out
            ready.sort()
            if self._order == "fifo":
                queue, batch = ready[self._turn % len(ready)], 1
                self._turn += 1
            elif self._order == "reverse":
                queue, batch = ready[-1], 64
            else:
                queue, batch = self._rng.choice(ready), self._rng.randint(1, 50)
            out = Batch(self.n)
            for _ in range(batch):
                if not self._deliver(*queue, out):
                    break
            for name, runner in self.runners.items():
                runner.flush(self.stores[name].enter)
            for outgoing in out.records(self.runners, self._enter):
                self._emit(outgoing.topic, outgoing.partition, outgoing.key, outgoing.value)

    def _deliver(self, stage: str, topic: str, partition: int, out: Batch) -> bool:
        log = self.logs[(topic, partition)]
        position = self.read.get((stage, topic, partition), 0)
        if position >= len(log):
            return False
        self.read[(stage, topic, partition)] = position + 1
        record = log[position]
        runner = self.runners[stage]
        self.stores[stage].enter(partition)
        done = handle_record(stage, runner, record, self.policy)
        if done.rejection is not None:
            self.out.dead_letters.append(dead_letter(
                done.rejection, record.value, topic=topic, partition=partition,
                offset=record.offset))
        out.add(stage, partition, done.effects)
        return True

    def _emit(self, topic: str, partition: int | None, key: bytes | None,
              value: bytes | None) -> None:
        if topic in TOPOLOGY.readers:
            target = partition if partition is not None else partition_of(
                (key or b"").decode(), self.n)
            self._append(topic, target, key, value or b"")
        elif topic == "alerts" and value is not None:
            self.out.alerts.append(_decode_alert(value))
        elif topic == "escalations" and value is not None:
            self.out.escalations.append(_decode_escalation(value))
        elif topic == "daily-report" and value is not None:
            self.out.reports.append(_decode_report(value))
        elif topic == "round-report" and value is not None:
            self.out.round_reports.append(_decode_round(value))
        elif topic == "person-status" and key is not None:
            self.out.status[key.decode()] = None if value is None else _decode_status(value)

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes,
                header: bytes | None = None) -> None:
        """Append a record; ``header``: an input record's ``received_at`` header, read as
        the worker reads a consumed record's (streams/kafka/receipts.py)."""
        log = self.logs.setdefault((topic, partition), [])
        if header is None:
            log.append(Record(topic, partition, len(log), key, value, self._received_at))
            return
        stamped = None if self._received_at is None else int(self._received_at * 1000)
        receipt = record_receipt([(RECEIVED_AT_HEADER, header)], stamped, self._received_at,
                                 self.policy.max_clock_skew)
        if isinstance(receipt, Rejection):
            log.append(Record(topic, partition, len(log), key, value, refused=receipt))
        else:
            log.append(Record(topic, partition, len(log), key, value, receipt.bound,
                              receipt.own, lag_from=receipt.lag_from))

    def _store(self, stage: str, state: type[Keyed]) -> StageStore:
        return self.stores.setdefault(stage, StageStore(state))

    def _enter(self, stage: str, partition: int) -> None:
        self.stores[stage].enter(partition)
