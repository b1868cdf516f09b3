"""A keyed stage on a Kafka worker: per-partition clocks, deadline indexes and alignment.

The worker's agents are thin: for every message they call one method here and send what it
returns. This module is plain Python (no Faust), so the worker's semantics are unit-tested
without a broker, and it calls the very ``Stage.apply``/``Stage.fire`` of the embedded driver.

Per partition it keeps the watermark of the stage's own inputs and the latest *clock mark* of
each upstream partition. The stage's clock is the smallest of them: a person partition does
not fire a test deadline before every tube partition has forwarded the samplings up to it,
and the report stage does not pass a cut-off before every upstream deadline has contributed.
When its clock moves on (a tick, or a ``mark_every`` step of event time) a stage marks its
clock to every partition downstream. A tick moves the stage's own clock (``--until`` in event
mode, the wall clock in wall mode).
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

import msgspec

from closedloop.agents import rounds
from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context, next_due
from closedloop.agents.shared import Shared
from closedloop.agents.state import (
    Contribution,
    Forward,
    Keyed,
    PersonState,
    ReportState,
    RoundPart,
    TubeState,
)
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Area, Round
from closedloop.schemas.outputs import Alert, DailyReport, RoundReport
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import MIN_EPOCH, Watermark
from closedloop.streams.engine.deadlines import DeadlineIndex
from closedloop.streams.engine.topology import (
    TOPOLOGY,
    Stage,
    Table,
    Wiring,
    apply_shared,
)

__all__ = [
    "META_PREFIX",
    "AnyRunner",
    "Effects",
    "PartitionMeta",
    "StageRunner",
    "meta_key",
    "runners",
]

S = TypeVar("S", bound=Keyed)

META_PREFIX = "\x00partition:"


def meta_key(partition: int) -> str:
    """The table key holding a partition's clock state (changelogged with the partition)."""
    return f"{META_PREFIX}{partition}"


class PartitionMeta(msgspec.Struct, kw_only=True, gc=False):
    """A partition's clock state, kept in its stage's table under :func:`meta_key` so that it
    is changelogged and moves with the partition (see ``_Partition`` for each field)."""

    topics: dict[str, int]
    processed: dict[str, int]
    marks: dict[str, int]
    pending: list[tuple[int, dict[str, int]]]
    tick: int
    marked: int
    max_seen: int
    clock: int
    seen: dict[str, int] = {}
    shared: Shared | None = None  # the person stage's areas and rounds


@dataclass(slots=True)
class Effects:
    """What one message produced, for the agent to send."""

    alerts: list[Alert] = field(default_factory=list)
    escalations: list[Alert] = field(default_factory=list)
    forwards: list[tuple[str, Forward]] = field(default_factory=list)
    contributions: list[Contribution] = field(default_factory=list)
    reports: list[DailyReport] = field(default_factory=list)
    rejection: Rejection | None = None
    duplicate: bool = False
    touched: set[str] = field(default_factory=set)
    mark: int | None = None  # the stage clock to announce downstream, if it moved a step
    broadcasts: list[bytes] = field(default_factory=list)  # shared facts, to every partition
    round_parts: list[RoundPart] = field(default_factory=list)  # person: a round report's share
    round_reports: list[RoundReport] = field(default_factory=list)  # report: summed shares
    actions_dropped: int = 0  # actions kept for an alert their subject never raised


class _Partition:
    __slots__ = ("clock", "ctx", "heard", "index", "keys", "marked", "marks", "number",
                 "pending", "processed", "seen", "shared", "tick", "topics")

    def __init__(self, lateness: int) -> None:
        self.number = -1
        self.clock = Watermark(lateness)
        self.index = DeadlineIndex()
        self.marks: dict[str, int] = {}
        self.marked = MIN_EPOCH  # the last clock announced downstream
        self.tick = MIN_EPOCH  # the last tick applied
        self.topics: dict[str, int] = {}  # input topic -> largest event time seen on it
        self.processed: dict[str, int] = {}  # input topic -> last offset applied
        self.pending: list[tuple[int, dict[str, int]]] = []  # ticks waiting for offsets
        self.seen: dict[str, int] = {}  # internal topic -> last offset applied (replay guard)
        self.shared = Shared()  # areas and rounds every person partition holds whole
        self.keys: set[str] = set()  # the person stage: the partition's persons (rounds scan)
        self.ctx: Context | None = None  # the rules' context, reused from record to record
        self.heard = False  # has every input topic delivered something here yet?


class StageRunner(Generic[S]):
    """One stage's partitions on this worker, over its keyed table (which also holds each
    partition's :class:`PartitionMeta`)."""

    def __init__(
        self,
        stage: Stage[S],
        policy: Policy,
        table: Table[S | PartitionMeta],
        *,
        upstream: int,
        own_clock: bool = True,
        mark_every: int = 60,
        catch_up_before: int | None = None,
        inputs: tuple[str, ...] = (),
        committed: Callable[[str, int], int | None] | None = None,
        partitions: int = 1,
        shared: bool = False,
    ) -> None:
        self.stage = stage
        self.policy = policy
        self.cal = Calendar(policy.zone, policy.daily_cutoff)
        self.table = table
        self.upstream = upstream  # how many upstream partitions mark this stage
        self.own_clock = own_clock  # False: inputs carry no clock (report contributions)
        self.mark_every = mark_every
        self.partitions: dict[int, _Partition] = {}
        self.catch_up_before = catch_up_before
        self.inputs = inputs  # input topics that drive the own clock
        self.committed = committed  # (topic, partition) -> the group's committed offset
        self.of = partitions  # how many partitions the stage has (a round report's shares)
        self.rounds = shared  # holds the shared facts, and runs the rounds over its persons
        self._unsaved: set[int] = set()  # partitions whose clock state changed since a flush

    # -- lifecycle ----------------------------------------------------------------------------

    def assign(self, partition: int, keys: list[str]) -> None:
        """(Re)build a partition's index from the table after recovery.

        A partition this worker already holds keeps its clock state in memory (the table's
        copy may be older); a new one loads it from the table.
        """
        part = self._part(partition)
        part.index.rebuild((key, st) for key in keys
                           if isinstance(st := self.table.get(key), Keyed))
        if self.rounds:
            part.keys = set(keys)
            if part.shared.rounds:
                rounds.prime(self.policy, part.shared, self._persons(part))

    def revoke(self, partition: int) -> None:
        self.partitions.pop(partition, None)
        self._unsaved.discard(partition)

    def _save(self, part: _Partition) -> None:
        """The partition's clock state changed in a way a takeover must see: written to the
        table at the next :meth:`flush` (once per batch, not once per record)."""
        self._unsaved.add(part.number)

    def flush(self, enter: Callable[[int], object] | None = None) -> None:
        """Keep the clock state of each partition changed since the last flush in the
        table, where it moves with the partition; ``enter(partition)`` selects a
        partition of a table that keeps one per partition."""
        for number in sorted(self._unsaved):
            part = self.partitions.get(number)
            if part is None:
                continue
            if enter is not None:
                enter(number)
            self.table[meta_key(number)] = PartitionMeta(
                topics=dict(part.topics), processed=dict(part.processed),
                marks=dict(part.marks), pending=list(part.pending), tick=part.tick,
                marked=part.marked, max_seen=part.clock.max_seen, clock=part.clock.value,
                seen=dict(part.seen),
                shared=part.shared if part.shared != Shared() else None,
            )
        self._unsaved.clear()

    def _load(self, part: _Partition) -> None:
        saved = self.table.get(meta_key(part.number))
        if not isinstance(saved, PartitionMeta):
            return
        part.topics = dict(saved.topics)
        part.processed = dict(saved.processed)
        part.marks = dict(saved.marks)
        part.pending = [(at, dict(after)) for at, after in saved.pending]
        part.tick = saved.tick
        part.marked = saved.marked
        part.clock.max_seen = saved.max_seen
        part.clock.value = saved.clock
        part.seen = dict(saved.seen)
        if saved.shared is not None:
            part.shared = saved.shared

    def open_deadlines(self) -> int:
        return sum(len(p.index) for p in self.partitions.values())

    # -- messages -----------------------------------------------------------------------------

    def on_input(
        self,
        partition: int,
        key: str,
        item: object,
        event_time: int,
        dedup_id: str | None,
        *,
        topic: str | None = None,
        offset: int | None = None,
        clocked: bool = True,
        into: Effects | None = None,
    ) -> Effects:
        """An input for ``key``: de-duplicate, apply, then fire what the clock reached.

        ``topic``/``offset`` name an input topic (not internal forwards or contributions):
        its offset counts for pending ticks, and unless ``clocked`` is False (an input the
        stage reads but does not own, an action on the tube stage) its event time moves
        that topic's watermark. ``into``: effects to add to (the items of one pack).
        """
        part = self._part(partition)
        effects = Effects() if into is None else into
        if topic is not None and offset is not None:
            part.processed[topic] = offset
            if clocked:
                if event_time > part.topics.get(topic, MIN_EPOCH):
                    part.topics[topic] = event_time
                self._observe(part)
            else:
                self._apply_ticks(part)
        st = self.table.get(key)
        if (dedup_id is not None and isinstance(st, Keyed) and st.ids is not None
                and dedup_id in st.ids):
            effects.duplicate = True
            self._fire(part, self._context(part), effects)
        else:
            ctx = self._context(part)
            rejection, due = self.stage.apply(ctx, self.table, key, item, fire=False)
            self._track(part, key)
            effects.rejection = rejection
            if dedup_id is not None and rejection is None:
                self._remember(key, dedup_id, event_time, ctx.clock)
            part.index.schedule(key, due)
            effects.touched.add(key)
            self._fire(part, ctx, effects)
        if part.pending or effects.mark is not None:
            self._save(part)
        return effects

    def on_counted(
        self, partition: int, key: str, item: object, event_time: int, topic: str, offset: int
    ) -> Effects:
        """A record that counts (a report contribution): applied once per offset."""
        return self.on_counted_many(partition, [(key, item, event_time)], topic, offset)

    def on_counted_many(self, partition: int, items: Sequence[tuple[str, object, int]],
                        topic: str, offset: int) -> Effects:
        """A record of (key, item, event time)s that count: applied once per offset.

        Kafka redelivers what was not committed before a rebalance or a crash; counts are not
        idempotent, so the partition remembers (in its table) the last offset it applied.
        """
        part = self._part(partition)
        if offset <= part.seen.get(topic, -1):
            return Effects(duplicate=True)
        part.seen[topic] = offset
        effects = Effects()
        for key, item, event_time in items:
            self.on_input(partition, key, item, event_time, None, into=effects)
        self._save(part)
        return effects

    def on_skipped(self, partition: int, topic: str, offset: int) -> Effects:
        """An input message that was rejected still counts as read for pending ticks."""
        part = self._part(partition)
        part.processed[topic] = offset
        effects = Effects()
        applied = self._apply_ticks(part)  # before the context: it may move the clock
        self._fire(part, self._context(part), effects, force_mark=applied)
        if part.pending or effects.mark is not None:
            self._save(part)
        return effects

    def on_tick(
        self, partition: int, instant: int, after: dict[str, int] | None = None
    ) -> Effects:
        """A tick moves this partition's own clock (and always announces it downstream).

        ``after`` (from ``clock --until``) holds the end offset of each input topic's
        partition when the tick was sent: the tick waits until those are applied, so that a
        topic consumed more slowly than another cannot be overtaken by it.
        """
        part = self._part(partition)
        part.pending.append((instant, after or {}))
        effects = Effects()
        applied = self._apply_ticks(part)  # before the context: it may move the clock
        self._fire(part, self._context(part), effects, force_mark=applied)
        self._save(part)
        return effects

    def on_shared(self, partition: int, event: Area | Round) -> Effects:
        """A shared fact broadcast by the tube stage: kept with the partition's clock state."""
        part = self._part(partition)
        effects = Effects()
        if apply_shared(self.policy, part.shared, event, self._persons(part)):
            self._save(part)
        self._fire(part, self._context(part), effects)
        return effects

    def on_mark(self, partition: int, source: str, clock: int) -> Effects:
        """An upstream partition's clock reached ``clock``."""
        part = self._part(partition)
        if clock > part.marks.get(source, MIN_EPOCH):
            part.marks[source] = clock
        effects = Effects()
        self._fire(part, self._context(part), effects)
        self._save(part)
        return effects

    # -- internals ----------------------------------------------------------------------------

    def _apply_ticks(self, part: _Partition) -> bool:
        """Apply the pending ticks whose offsets have all been processed."""
        applied = False
        while part.pending:
            instant, after = part.pending[0]
            if any(self._done_upto(part, topic) < end - 1 for topic, end in after.items()):
                break
            part.pending.pop(0)
            part.tick = max(part.tick, instant)
            part.clock.advance_to(instant)
            applied = True
        return applied

    def _done_upto(self, part: _Partition, topic: str) -> int:
        """The last offset of ``topic`` in this partition known to be applied.

        What this worker applied itself, or what the consumer group committed before this
        worker took the partition over (a committed offset is the next one to read).
        """
        done = part.processed.get(topic, -1)
        if self.committed is not None:
            committed = self.committed(topic, part.number)
            if committed is not None and committed - 1 > done:
                return committed - 1
        return done

    def _observe(self, part: _Partition) -> None:
        """Own watermark: the slowest input topic's latest event time, less the lateness.

        Kafka interleaves a stage's input topics arbitrarily; taking the slowest topic keeps
        one topic read ahead from pushing deadlines past facts still waiting in another.
        Until every input topic has delivered something in this partition, the clock holds:
        a topic that is empty now (its producer may still be writing) may yet deliver facts
        older than the others'. Ticks (``clock --until``, the wall clock) move it regardless.
        """
        self._apply_ticks(part)
        if not part.heard:
            if any(topic not in part.topics for topic in self.inputs):
                return
            part.heard = True
        part.clock.observe(min(part.topics.values()))

    def _part(self, partition: int) -> _Partition:
        part = self.partitions.get(partition)
        if part is None:
            part = self.partitions[partition] = _Partition(self.policy.allowed_lateness)
            part.number = partition
            self._load(part)
        return part

    def context(self, partition: int) -> Context:
        """What the rules see in ``partition`` now (for person-status, say): a context of its
        own, which the caller may keep."""
        part = self._part(partition)
        return Context(self.policy, self.cal, self._effective(part),
                       catch_up_before=self.catch_up_before, shared=part.shared)

    def effective_clock(self, partition: int) -> int:
        return self._effective(self._part(partition))

    def _effective(self, part: _Partition) -> int:
        """min(own watermark, every upstream mark); unknown until each has spoken."""
        if self.upstream and len(part.marks) < self.upstream:
            return MIN_EPOCH
        upstream = min(part.marks.values()) if self.upstream else None
        if not self.own_clock:
            return MIN_EPOCH if upstream is None else upstream
        own = part.clock.value
        return own if upstream is None else min(own, upstream)

    def _context(self, part: _Partition) -> Context:
        """The partition's one context at its clock now: built once, not once per record
        (:meth:`_fire` empties what the rules put in it)."""
        ctx = part.ctx
        if ctx is None:
            ctx = part.ctx = Context(self.policy, self.cal, MIN_EPOCH,
                                     catch_up_before=self.catch_up_before)
        ctx.clock = self._effective(part)
        ctx.shared = part.shared
        return ctx

    def _fire(
        self, part: _Partition, ctx: Context, effects: Effects, force_mark: bool = False
    ) -> None:
        clock = ctx.clock
        if self.rounds and part.shared.rounds:  # first: gc at this clock may thin persons out
            due = rounds.next_due(self.policy, part.shared)
            if due is not None and due <= clock:
                self._fire_rounds(part, ctx, effects)
        if part.index.earliest <= clock:
            for key in part.index.pop_due(clock):
                part.index.schedule(key, self.stage.fire(ctx, self.table, key))
                self._track(part, key)
                effects.touched.add(key)
        # the partition's context is reused: what the rules put there moves to the effects
        _move(ctx.alerts, effects.alerts)
        _move(ctx.escalations, effects.escalations)
        _move(ctx.forwards, effects.forwards)
        _move(ctx.contributions, effects.contributions)
        _move(ctx.reports, effects.reports)
        _move(ctx.round_reports, effects.round_reports)
        if ctx.actions_dropped:
            effects.actions_dropped += ctx.actions_dropped
            ctx.actions_dropped = 0
        if clock == MIN_EPOCH or (clock <= part.marked and not force_mark):
            return
        caught_up_with_tick = part.tick > part.marked and clock >= part.tick
        if force_mark or caught_up_with_tick or clock >= part.marked + self.mark_every:
            part.marked = max(part.marked, clock)
            effects.mark = clock

    def _fire_rounds(self, part: _Partition, ctx: Context, effects: Effects) -> None:
        """The partition's shares of every round report due, and its persons' round_missed."""
        persons = self._persons(part)
        for key in sorted(rounds.fire_rounds(ctx, part.shared, persons)):
            st = persons[key]  # an alert raised there opened its escalation: write it back
            persons.table[key] = st
            part.index.schedule(key, next_due(st))
            effects.touched.add(key)
        effects.round_parts.extend(msgspec.structs.replace(share, source=part.number, of=self.of)
                                   for share in ctx.round_parts)
        ctx.round_parts.clear()
        self._save(part)

    def _persons(self, part: _Partition) -> _Persons:
        """The partition's persons (``self.rounds``: this is the person stage's table)."""
        return _Persons(cast("Table[PersonState | PartitionMeta]", self.table), part.keys)

    def _track(self, part: _Partition, key: str) -> None:
        """Keep the partition's person keys (a stage deletes a key it forgets)."""
        if self.rounds:
            if key in self.table:
                part.keys.add(key)
            else:
                part.keys.discard(key)

    def _remember(self, key: str, dedup_id: str, event_time: int, clock: int) -> None:
        st = self.table.get(key)
        if not isinstance(st, self.stage.state):
            return
        ids = st.ids
        if ids is None:
            st.ids = ids = {}
        ids[dedup_id] = event_time
        if len(ids) > 64:
            horizon = clock - self.policy.dedup_retention
            for old in [i for i, t in ids.items() if t < horizon]:
                del ids[old]
        self.table[key] = st



T = TypeVar("T")


def _move(source: list[T], target: list[T]) -> None:
    """Append what ``source`` holds to ``target`` and empty it (most often it is empty)."""
    if source:
        target.extend(source)
        source.clear()


class _Persons(Mapping[str, PersonState]):
    """A partition's persons as the round rules read them: its keys over the stage's table.

    A state looked up by key is kept, so what a rule changed in it (an alert raised) can be
    written back; a scan (``values``, ``items``) keeps nothing: on Faust every read decodes
    afresh, and a partition's persons must not all be held at once."""

    __slots__ = ("loaded", "names", "table")

    def __init__(self, table: Table[PersonState | PartitionMeta], names: set[str]) -> None:
        self.table, self.names = table, names
        self.loaded: dict[str, PersonState] = {}

    def __getitem__(self, key: str) -> PersonState:
        st = self.loaded.get(key)
        if st is None:
            st = self.loaded[key] = self._read(key)
        return st

    def _read(self, key: str) -> PersonState:
        found = self.table.get(key) if key in self.names else None
        if not isinstance(found, PersonState):
            raise KeyError(key)
        return found

    def _scan(self) -> Iterator[tuple[str, PersonState]]:
        for key in list(self.names):
            st = self.loaded.get(key)
            if st is None:
                found = self.table.get(key)
                if not isinstance(found, PersonState):
                    continue
                st = found
            yield key, st

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.names))

    def __len__(self) -> int:
        return len(self.names)

    def values(self) -> ValuesView[PersonState]:
        return _ScanValues(self)

    def items(self) -> ItemsView[str, PersonState]:
        return _ScanItems(self)


class _ScanValues(ValuesView[PersonState]):
    _mapping: _Persons

    def __iter__(self) -> Iterator[PersonState]:
        return (st for _, st in self._mapping._scan())


class _ScanItems(ItemsView[str, PersonState]):
    _mapping: _Persons

    def __iter__(self) -> Iterator[tuple[str, PersonState]]:
        return self._mapping._scan()


AnyRunner = StageRunner[TubeState] | StageRunner[PersonState] | StageRunner[ReportState]
"""A runner of any of the three stages (the worker and the bus hold one of each)."""


def runners(
    policy: Policy,
    partitions: int,
    table_of: Callable[[str, type[Keyed]], Table[Keyed | PartitionMeta]],
    *,
    catch_up_before: int | None = None,
    committed: Callable[[str, int], int | None] | None = None,
) -> dict[str, AnyRunner]:
    """One runner per stage of :data:`TOPOLOGY`, on ``partitions`` partitions of every topic.

    ``table_of(stage name, state type)`` gives each stage its keyed table. The stages that own
    input topics keep their own clock from them; the report stage's clock is its upstream
    marks.
    """

    def one(wiring: Wiring) -> AnyRunner:
        stage = wiring.stage
        table = table_of(stage.name, stage.state)
        upstream = TOPOLOGY.upstream_partitions(stage.name, partitions)
        if not wiring.clocked:
            return StageRunner(stage, policy, table, upstream=upstream, own_clock=False,
                               partitions=partitions, shared=wiring.shared)
        return StageRunner(stage, policy, table, upstream=upstream,
                           catch_up_before=catch_up_before, inputs=wiring.owns,
                           committed=committed, partitions=partitions, shared=wiring.shared)

    return {wiring.name: one(wiring) for wiring in TOPOLOGY.stages}
