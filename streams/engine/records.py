"""One record in, records out: what a stage does with each record of a topic it reads.

The Kafka worker and the in-memory bus (:mod:`closedloop.streams.engine.bus`) both call
:func:`handle_record` for every record a stage receives and gather what it produced in a
:class:`Batch`, so the multi-partition path (marks, clocks, forwards, contributions) is one
piece of plain Python, tested without a broker. Topics are named by their short names (``sampling``,
``person-tests``); the caller maps them to addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from typing import Final, Protocol

import msgspec

from closedloop.agents import person as person_rules
from closedloop.agents.closure import ENTRY, ENTRY_LATE, rejected_contribution
from closedloop.agents.combine import EntryCombiner, LabParts
from closedloop.agents.entries import without_proof
from closedloop.agents.entry import EntryState, entry_lag, is_late
from closedloop.agents.escalation import action_outcome
from closedloop.agents.round_sum import round_key
from closedloop.agents.sources import Entered, rejected_part, routes
from closedloop.agents.state import (
    Contribution,
    Escalate,
    LabTold,
    Result,
    Retest,
    RoundPart,
    Sampled,
)
from closedloop.schemas.decode import Rejection, decode_event
from closedloop.schemas.events import KEY_FIELD, Action, Area, Checkpoint, Event, Round
from closedloop.schemas.instants import epoch_seconds, recent_objects
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import MIN_EPOCH
from closedloop.streams.engine.stage_runner import AnyRunner, RecordEffects
from closedloop.streams.engine.topology import TOPOLOGY, partition_of

__all__ = ["Batch", "Direct", "Handled", "Outgoing", "Record", "handle_record", "tick_record"]

_encoder = msgspec.json.Encoder()
_encode = _encoder.encode
log = logging.getLogger("closedloop.worker")
# A published status's digest is kept per person for as long as the worker runs: below
# 2**60 an int has two 30-bit digits (32 bytes) instead of the three (48 bytes, pymalloc
# rounding 36 up) most 64-bit hashes take. It leaves out what the table's key already says
# (a person's id), so a pool's members, sampled and told their result alike, have equal
# digests: one int object for them while it is recent.
_DIGEST_BITS = (1 << 60) - 1
_one_digest = recent_objects(1 << 14)


@dataclass(frozen=True, slots=True)
class Record:
    """A record as a stage receives it (short topic name)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    received_at: float | None = None  # the receipt of the implausible-time rule (§1)
    # v1.2: the record's own receipt, its received_at header (streams/kafka/receipts.py),
    # which then bounds the event's times; or why that header is refused
    own: datetime | None = None
    refused: Rejection | None = None
    # v1.2: the instant its entry lag is measured from (epoch seconds), None when unknown:
    # its header's received_at, or the timestamp of a record without that header
    lag_from: int | None = None


class Direct(Protocol):
    """A list of outgoing records, or a sink that writes each away as it comes."""

    def append(self, record: Outgoing, /) -> None: ...

    def extend(self, records: Iterable[Outgoing], /) -> None: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to send: to ``partition`` when given, else by ``key`` (Kafka's partitioner)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


@dataclass(slots=True)
class Handled:
    """What handling one record did, beyond its effects: for dead letters and telemetry."""

    effects: RecordEffects
    rejection: Rejection | None = None  # dead-letter the record with this reason
    consumed: bool = False  # an input event this stage owns (counted once, by its owner)
    action: str | None = None  # an operator action applied where the subject's state is
    action_ignored: str | None = None  # why an action reaching the subject's state was ignored
    entry: tuple[str, str] | None = None  # a checkpoint entry applied: (role, proof outcome)
    error: Exception | None = None  # what the stage raised (the record is dead-lettered)
    lag: tuple[str, int, bool] | None = None  # v1.2: (topic, entry lag, late) when known


class _Tick(msgspec.Struct, tag="tick", tag_field="type"):
    """Moves a stage partition's own clock (wall timer, or ``clock --until``)."""

    at: int
    after: dict[str, dict[str, int]] = {}  # topic -> partition -> end offset to wait for


class _Mark(msgspec.Struct, tag="mark", tag_field="type"):
    """An upstream partition's clock."""

    source: str
    at: int


class _Shared(msgspec.Struct, tag="shared", tag_field="type"):
    """A validated record of a shared topic (area, round), sent to every person partition."""

    topic: str
    event: msgspec.Raw  # the event's JSON as it came


_Item = Sampled | Result | Retest | Escalate | Contribution | RoundPart | Entered | LabTold


class _Pack(msgspec.Struct, tag="pack", tag_field="type"):
    """Many keyed items for one partition of an internal topic, in one record: a batch's
    forwards (key person_id) or contributions (key district, or round_id for a round's
    share). One record per partition and batch, not one per item, is what keeps the worker
    near one record written per input event."""

    items: list[tuple[str, _Item]]


ENTRY_FIELDS: Final = (ENTRY, ENTRY_LATE)  # a report's entry contributions, combined

_decode_internal = msgspec.json.Decoder(_Tick | _Mark | _Shared | _Pack | _Item).decode
"""Every record of an internal topic, by its ``type``."""


def handle_record(stage: str, runner: AnyRunner, record: Record, policy: Policy) -> Handled:
    """Apply one record of any topic ``stage`` reads. Never raises: a record the stage fails
    on (a bug, or an input no rule foresaw) is dead-lettered as ``internal_error``, with the
    exception kept for the log, and the stage goes on with the next one."""
    try:
        return _handle(stage, runner, record, policy)
    except Exception as exc:
        failed = Rejection("internal_error", f"the {stage} stage failed on this record "
                           f"({type(exc).__name__}); it was skipped")
        return Handled(RecordEffects(), rejection=failed,
                       consumed=record.topic in TOPOLOGY.wiring[stage].owns, error=exc)


def _handle(stage: str, runner: AnyRunner, record: Record, policy: Policy) -> Handled:
    wiring = TOPOLOGY.wiring[stage]
    if record.topic in wiring.quiet:
        return _quiet_input(runner, record, policy)
    if record.topic in wiring.broadcasts:
        return _shared_input(runner, record, policy)
    if record.topic in wiring.owns:
        return _owned_input(runner, record, policy)
    return Handled(_internal(runner, record, wiring.counted))


def _decode_keyed(record: Record, policy: Policy) -> tuple[str, Event | Rejection]:
    """Decode an input event and check its message key is the contract's key field."""
    decoded = record.refused or decode_event(
        record.topic, record.value, policy.cohorts, received_at=record.received_at,
        max_clock_skew=policy.max_clock_skew, receipt=record.own)
    # interned, as replay's intake does: a key the state keeps is then one string shared by
    # the partition's table, its deadline index and the other stages' states that name it
    key = intern(record.key.decode("utf-8", "replace")) if record.key else ""
    field = KEY_FIELD[record.topic]
    if not isinstance(decoded, Rejection) and key != getattr(decoded, field):
        decoded = Rejection("bad_envelope", f"the message key is not the event's {field}")
    return key, decoded


def _owned_input(runner: AnyRunner, record: Record, policy: Policy) -> Handled:
    key, decoded = _decode_keyed(record, policy)
    if isinstance(decoded, Rejection):
        clock = runner.reading_clock(record.partition)  # before a tick it releases
        # held before the skip, so that a tick the skip releases starts the clock for it
        counted = _rejected_count(runner, record, decoded, clock, policy)
        fx = runner.on_skipped(record.partition, record.topic, record.offset)
        if counted is not None:
            fx.contributions.append(counted)
        return Handled(fx, rejection=decoded, consumed=True)
    at = epoch_seconds(decoded.occurred_at)
    fx = runner.on_input(record.partition, key, decoded, at, decoded.event_id,
                         topic=record.topic, offset=record.offset)
    handled = Handled(fx, rejection=fx.rejection, consumed=True)
    if fx.rejection is not None:  # a rule refused it, at the clock it moved
        counted = _rejected_count(runner, record, fx.rejection,
                                  runner.reading_clock(record.partition), policy)
        if counted is not None:
            fx.contributions.append(counted)
    elif not fx.duplicate:
        handled.lag = _entered(fx, policy, record, decoded, at)
    if not fx.duplicate and fx.rejection is None and isinstance(decoded, Action) \
            and key in runner.table:
        # counted where the subject's state is: a person's here, a tube's on the tube stage
        _count_action(handled, runner, key, decoded)
    if not fx.duplicate and fx.rejection is None and isinstance(decoded, Checkpoint):
        proof = decoded.proof_sampled_at
        missing = without_proof(policy, at, None if proof is None else int(proof.timestamp()))
        handled.entry = (decoded.role, "without_proof" if missing else "with_proof")
    return handled


def _entered(fx: RecordEffects, policy: Policy, record: Record, event: Event, at: int
             ) -> tuple[str, int, bool] | None:
    """A valid record applied by its owner: what it sends the data-entry stage and its
    district's report (agents/sources.py), and its entry lag when known (for the metrics)."""
    sent, contribution = routes(policy, record.topic, event, at, record.lag_from)
    if sent:
        fx.entered.extend(sent)
    if contribution is not None:
        fx.contributions.append(contribution)
    if record.lag_from is None:
        return None
    lag = entry_lag(record.lag_from, at)
    return record.topic, lag, is_late(policy, record.topic, lag)


def _rejected_count(runner: AnyRunner, record: Record, rejection: Rejection, clock: int,
                    policy: Policy) -> Contribution | None:
    """A rejected input counts in its district's report (``entries_rejected``) when its value
    names a valid district: at its own occurred_at when it has a plausible one, else one
    second after ``clock``, where the partition had read to (``reading_clock``: a rejected
    record moves no clock); before it has read anything the input is held in the
    partition, and counts once it has (agents/sources.py ``rejected_part``). One holding a
    raw identifier does not count (it must never have reached a topic: no producer of ours
    sends it, and replay counts it nowhere either)."""
    if rejection.reason == "raw_identifier":
        return None
    try:
        value = msgspec.json.decode(record.value)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None  # not JSON (or not UTF-8): it names no district
    found = rejected_part(policy, record.topic, value, record.received_at)
    if found is None:
        return None
    district, at = found
    if at is not None:
        return rejected_contribution(district, at)
    if clock != MIN_EPOCH:
        return rejected_contribution(district, clock + 1)
    runner.hold_rejected(record.partition, district)
    return None


def _quiet_input(runner: AnyRunner, record: Record, policy: Policy) -> Handled:
    """An input another stage owns (an action on the tube stage): applied if valid, else
    dropped silently (the owner dead-letters and counts it). It does not move the clock, but
    its offset counts for ``clock --until`` ticks, which wait for actions sent before them.
    """
    key, decoded = _decode_keyed(record, policy)
    if isinstance(decoded, Rejection):
        return Handled(runner.on_skipped(record.partition, record.topic, record.offset))
    at = epoch_seconds(decoded.occurred_at)
    fx = runner.on_input(record.partition, key, decoded, at, decoded.event_id,
                         topic=record.topic, offset=record.offset, clocked=False)
    handled = Handled(fx)
    if isinstance(decoded, Action) and key in runner.table and not fx.duplicate:
        _count_action(handled, runner, key, decoded)
    return handled


def _count_action(handled: Handled, runner: AnyRunner, key: str, action: Action) -> None:
    """An action that reached its subject's state: applied, or ignored and why."""
    ignored = action_outcome((runner.table.get(key),), action.alert_id,
                             epoch_seconds(action.occurred_at), runner.policy.escalate_after)
    if ignored is None:
        handled.action = action.action
    else:
        handled.action_ignored = ignored


def _shared_input(runner: AnyRunner, record: Record, policy: Policy) -> Handled:
    """A shared fact (area, round): validated, de-duplicated and counted here, applied on
    every person partition. Its offset counts for ticks; its event time moves no clock."""
    _, decoded = _decode_keyed(record, policy)
    if isinstance(decoded, Rejection):
        clock = runner.reading_clock(record.partition)  # before a tick it releases
        # held before the skip, so that a tick the skip releases starts the clock for it
        counted = _rejected_count(runner, record, decoded, clock, policy)
        fx = runner.on_skipped(record.partition, record.topic, record.offset)
        if counted is not None:
            fx.contributions.append(counted)
        return Handled(fx, rejection=decoded, consumed=True)
    duplicate = runner.seen(record.partition, record.topic, decoded.event_id,
                            epoch_seconds(decoded.occurred_at))
    fx = runner.on_skipped(record.partition, record.topic, record.offset)
    if duplicate:
        fx.duplicate = True
    else:
        fx.broadcasts.append(_encode(_Shared(record.topic, msgspec.Raw(record.value))))
    return Handled(fx, consumed=True)


def _internal(runner: AnyRunner, record: Record, counted: bool) -> RecordEffects:
    """A record of an internal topic: tick, clock mark, forward or contribution."""
    item = _decode_internal(record.value)
    partition = record.partition
    if isinstance(item, _Tick):
        after = {topic: ends[str(partition)] for topic, ends in item.after.items()
                 if str(partition) in ends}
        return runner.on_tick(partition, item.at, after)
    if isinstance(item, _Mark):
        return runner.on_mark(partition, item.source, item.at)
    if isinstance(item, _Shared):
        event = decode_event(item.topic, bytes(item.event))
        if isinstance(event, Area | Round):
            return runner.on_shared(partition, event)
        return RecordEffects()  # validated by the tube stage; a newer engine's record, say
    if isinstance(item, _Pack):
        return _unpack(runner, record, item, counted)
    key = intern(record.key.decode()) if record.key else ""
    if isinstance(item, Contribution):
        return runner.on_counted(partition, key, item, item.at, record.topic, record.offset)
    if isinstance(item, RoundPart):  # a round's shares are kept apart from the districts
        return runner.on_counted(partition, round_key(item.round_id), item, item.at,
                                 record.topic, record.offset)
    if isinstance(item, Entered | LabTold):
        return runner.on_counted(partition, key, item, _entry_time(item), record.topic,
                                 record.offset)
    return runner.on_input(partition, key, item, person_rules.forward_time(item), None)


def _unpack(runner: AnyRunner, record: Record, pack: _Pack, counted: bool) -> RecordEffects:
    """A pack of forwards (applied one by one, as separate records would be) or of
    contributions (counted once per offset, the pack as a whole)."""
    partition = record.partition
    if counted:
        return runner.on_counted_many(partition, _counted_items(runner, partition, pack),
                                      record.topic, record.offset)
    effects = RecordEffects()
    for key, item in pack.items:
        if isinstance(item, Sampled | Result | Retest | Escalate):
            runner.on_input(partition, intern(key), item, person_rules.forward_time(item), None,
                            into=effects)
    return effects


def _counted_items(runner: AnyRunner, partition: int, pack: _Pack
                   ) -> list[tuple[str, object, int]]:
    """A pack's items that count, in its order, its entry parts (``Entered``, entry
    contributions) combined per key and day as replay combines a run's (agents/combine.py),
    and what a lab's tubes tell it combined per lab (one clock for the pack: the lab's
    state is that of one by one, but for a wait begun before that clock, a fact read after
    the lab judged it, agents/entry.py ``on_told``):
    the stage's clock is the same for the whole pack, and no source's or report's day can
    fire within it but a day the clock has passed, whose entries stay in their place, one
    by one (a report they make due is raised before the items after them)."""
    combiner: EntryCombiner | None = None
    labs: LabParts | None = None  # most packs hold no lab's part
    clock = runner.effective_clock(partition)
    items: list[tuple[str, object, int]] = []
    for key, item in pack.items:
        if isinstance(item, Contribution):
            if item.field in ENTRY_FIELDS:
                if combiner is None:
                    combiner = _combiner(runner)
                combiner.contributed(key, item.at, item.d, item.field == ENTRY_LATE, clock)
                if combiner.overdue:
                    items.extend((district, lags, lags.at)
                                 for district, lags in combiner.overdue)
                    combiner.overdue.clear()
            else:
                items.append((key, item, item.at))
        elif isinstance(item, RoundPart):
            items.append((round_key(item.round_id), item, item.at))
        elif isinstance(item, LabTold):
            if labs is None:  # a lab adds up what its tubes tell it in any order
                labs = LabParts(runner.policy)
            labs.merge(key, item)
        elif isinstance(item, Entered):
            if combiner is None:
                combiner = _combiner(runner)
            combiner.entered(key, item, clock)
    if labs is not None:
        items.extend((key, told, _entry_time(told)) for key, told in labs.take())
    if combiner is not None:
        days, lags = combiner.take()
        items.extend((district, day_lags, day_lags.at) for district, day_lags in lags)
        items.extend((key, day, day.last) for key, day in days)
    return items


def _combiner(runner: AnyRunner) -> EntryCombiner:
    table = runner.table

    def judged(key: str) -> int | None:
        st = table.get(key)
        days = st.days if isinstance(st, EntryState) else None
        return None if days is None else days.judged

    return EntryCombiner(runner.policy, runner.cal, judged)


def _entry_time(item: Entered | LabTold) -> int:
    if isinstance(item, Entered):
        return item.receipt
    return max((*item.starts, *item.stops, *item.reports), default=MIN_EPOCH)


def tick_record(at: int, after: dict[str, dict[str, int]] | None = None) -> bytes:
    """The value of a tick: ``after`` holds each input topic's end offsets per partition."""
    return _encode(_Tick(at, after or {}))


PACK_LIMIT = 500
"""Items per pack record: a catch-up batch's forwards stay far below a broker's 1 MB limit."""
_PACK_OPEN: Final = b'{"type":"pack","items":['  # a _Pack's JSON up to its first item
_PACK_CLOSE: Final = b"]}"


class _Packs:
    """The pack records of one internal topic partition, written as their items are made:
    each item is encoded into the open pack's buffer at once, so a batch holds a buffer per
    partition instead of an object or three per forward (20,000 a batch, left as holes among
    the states made meanwhile: the allocator's arenas stay partly used). The bytes are those
    ``_encode(_Pack(items))`` gives, PACK_LIMIT items a pack."""

    __slots__ = ("_count", "_open", "done")

    def __init__(self) -> None:
        self.done: list[bytes] = []
        self._open = bytearray(_PACK_OPEN)
        self._count = 0

    def add(self, key: str, item: _Item) -> None:
        if self._count == PACK_LIMIT:
            self.done.append(self._closed())
            self._open, self._count = bytearray(_PACK_OPEN), 0
        elif self._count:
            self._open += b","
        _encoder.encode_into((key, item), self._open, -1)
        self._count += 1

    def records(self) -> list[bytes]:
        return [*self.done, self._closed()] if self._count else self.done

    def _closed(self) -> bytes:
        self._open += _PACK_CLOSE
        return bytes(self._open)


class Batch:
    """What one consumer batch made, coalesced into the records to send.

    - alerts, escalations and reports: one record each, in the order made;
    - forwards and contributions: one pack per target partition (chunks of
      :data:`PACK_LIMIT`), placed where the first item for that partition was made, so a
      shared fact broadcast in between keeps its place;
    - person-status: once per person touched, from the state the batch left;
    - clock marks: the latest of each stage partition, once, after everything they cover.

    The Kafka worker makes one per consumer batch, the in-memory bus one per delivery, so
    the coalescing is tested in every arrival order without a broker.
    """

    __slots__ = ("_internal", "_marks", "_n", "_packs", "direct", "touched")

    def __init__(self, partitions: int, direct: Direct | None = None) -> None:
        """``direct``: where the records sent as made (alerts, escalations, reports, dead
        letters) go at once, in order, instead of a list kept until :meth:`stream`: a round's
        alerts for every person missed are then never all held as objects."""
        self._n = partitions
        self.direct: Direct = [] if direct is None else direct
        self._internal: list[Outgoing | tuple[str, int]] = []  # a pack's place, or a record
        self._packs: dict[tuple[str, int], _Packs] = {}
        self._marks: dict[tuple[str, int], int] = {}
        self.touched: dict[tuple[str, int], set[str]] = {}  # (stage, partition) -> keys

    def add(self, stage: str, partition: int, fx: RecordEffects) -> None:
        # Most records make no output at all: each list is tested before any generator is
        # built for it (this runs once per record and stage on the worker).
        out = self.direct
        if fx.alerts:
            out.extend(Outgoing("alerts", alert.subject.encode(), _encode(alert))
                       for alert in fx.alerts)
        if fx.escalations:
            out.extend(Outgoing("escalations", escalation.subject.encode(),
                                _encode(escalation)) for escalation in fx.escalations)
        if fx.reports:
            out.extend(Outgoing("daily-report", report.district.encode(), _encode(report))
                       for report in fx.reports)
        if fx.round_reports:
            out.extend(Outgoing("round-report", report.round_id.encode(), _encode(report))
                       for report in fx.round_reports)
        route = TOPOLOGY.route
        for person_id, message in fx.forwards:
            self._item(route[type(message)], person_id, message)
        for item in fx.contributions:
            self._item(route[Contribution], item.district, item)
        for share in fx.round_parts:
            self._item(route[RoundPart], share.round_id, share)
        for key, entered in fx.entered:
            self._item(route[type(entered)], key, entered)
        for lab_id, told in fx.labs:
            self._item(route[LabTold], lab_id, told)
        if fx.broadcasts:
            self._internal.extend(Outgoing(topic, None, value, target)
                                  for value in fx.broadcasts for topic in TOPOLOGY.shared_to
                                  for target in range(self._n))
        if fx.touched:
            self.touched.setdefault((stage, partition), set()).update(fx.touched)
        if fx.mark is not None and fx.mark > self._marks.get((stage, partition), fx.mark - 1):
            self._marks[(stage, partition)] = fx.mark

    def _item(self, topic: str, key: str, item: _Item) -> None:
        place = (topic, partition_of(key, self._n))
        packs = self._packs.get(place)
        if packs is None:
            packs = self._packs[place] = _Packs()
            self._internal.append(place)
        packs.add(key, item)

    def records(self, runners: Mapping[str, AnyRunner],
                enter: Callable[[str, int], object] | None = None,
                published: Callable[[str, int], dict[str, int]] | None = None
                ) -> list[Outgoing]:
        """Every record of the batch, in sending order (:meth:`stream`, as a list)."""
        return list(self.stream(runners, enter, published))

    def stream(self, runners: Mapping[str, AnyRunner],
               enter: Callable[[str, int], object] | None = None,
               published: Callable[[str, int], dict[str, int]] | None = None
               ) -> Iterator[Outgoing]:
        """Every record of the batch, in sending order, each made as it is asked for: a
        round's batch gives every person a status, and a sender that writes each away
        before asking for the next never holds them all. The states of a stage with a status
        topic (:attr:`Wiring.status`: person-status) give each touched key's status, read
        from ``runners``; ``enter(stage, partition)`` selects a partition of a stage's table
        where the table keeps one per partition.

        ``published(stage, partition)``: a digest of each key's last published status there;
        a status that differs from it only in ``updated_at`` is not published again (the
        compacted topic keeps the key's latest change)."""
        if isinstance(self.direct, list):  # kept, not written as made
            yield from self.direct
        for entry in self._internal:
            if isinstance(entry, Outgoing):
                yield entry
                continue
            for pack in self._packs[entry].records():
                yield Outgoing(entry[0], None, pack, entry[1])
        for (stage, partition), keys in self.touched.items():
            topic = TOPOLOGY.wiring[stage].status
            if topic is not None:
                if enter is not None:
                    enter(stage, partition)
                seen = None if published is None else published(stage, partition)
                yield from _statuses(runners[stage], partition, sorted(keys), topic, seen)
        for (stage, partition), at in self._marks.items():
            mark = _encode(_Mark(f"{stage}/{partition}", at))
            for name in TOPOLOGY.marks[stage]:
                for target in range(self._n):
                    yield Outgoing(name, None, mark, target)


def _statuses(runner: AnyRunner, partition: int, keys: list[str], topic: str,
              seen: dict[str, int] | None) -> Iterator[Outgoing]:
    """The status record of each of ``keys`` (a tombstone for a key forgotten), but for one
    whose status changed only in its ``updated_at`` since ``seen`` says it was published."""
    ctx = runner.context(partition)
    status_of = runner.stage.status
    if status_of is None:
        return
    unkeyed = {"updated_at": ""}
    field = TOPOLOGY.topic[topic].key
    if field is not None:  # the table's key already tells statuses of two keys apart
        unkeyed[field] = ""
    for key in keys:
        st = runner.table.get(key)
        if not isinstance(st, runner.stage.state):
            if seen is not None:
                seen.pop(key, None)
            yield Outgoing(topic, key.encode(), None)
            continue
        try:
            status = status_of(ctx, key, st)  # type: ignore[arg-type]
        except Exception:  # a rule's bug must not stop the batch, nor loop a worker
            log.exception("closedloop: a status could not be made; skipped")
            continue
        if seen is not None:
            digest = _digest(status, unkeyed)
            if seen.get(key) == digest:
                continue  # only its updated_at would change
            seen[key] = digest
        yield Outgoing(topic, key.encode(), _encode(status))


def _digest(status: msgspec.Struct, unkeyed: dict[str, str]) -> int:
    """What tells ``status`` apart but for the fields ``unkeyed`` blanks (its key, its
    ``updated_at``): the int object already standing for it, while recent."""
    return _one_digest(hash(_encode(msgspec.structs.replace(status, **unkeyed)))
                       & _DIGEST_BITS)
