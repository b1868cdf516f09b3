"""A keyed stage on its partitions: clocks, de-duplication, the deadline index, alignment.

Every runtime path runs the stages through this module: the Kafka worker and the in-memory
partitioned bus record by record (:meth:`StageRunner.on_input` and the other ``on_*``
methods, which hand back what a record produced as :class:`RecordEffects`), and replay's
one-partition bus (``engine/embedded.py``) through the steps those are made of
(:meth:`StageRunner.seen`, :meth:`StageRunner.apply`, :meth:`StageRunner.fire`), without an
:class:`RecordEffects` per event. Both call the very ``Stage.apply``/``Stage.fire`` of the
topology, on the same partition state. Plain Python: no Kafka, no Faust.

Per partition a runner keeps the watermark of the stage's own input logs and the latest
*clock mark* of each upstream partition. The stage's clock is the smallest of them: a person
partition does not fire a test deadline before every tube partition has forwarded the
samplings up to it, and the report stage does not pass a cut-off before every upstream
deadline has contributed (``docs/RULES.md``, "Clocks"). When its clock moves on (a tick, or a
``mark_every`` step of event time) a stage marks its clock to every partition downstream. A
tick moves the stage's own clock (``--until`` in event mode, the wall clock in wall mode).
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar, cast

import msgspec

from closedloop.agents import rounds
from closedloop.agents.calendar import Calendar
from closedloop.agents.closure import rejected_contribution
from closedloop.agents.effects import Effects
from closedloop.agents.entry import EntryState
from closedloop.agents.requirements import Context, next_due
from closedloop.agents.shared import Shared
from closedloop.agents.sources import Entered
from closedloop.agents.state import Keyed, PersonState, ReportState, TubeState
from closedloop.agents.units import UnitKey
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Area, Round
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import MIN_EPOCH, Watermark
from closedloop.streams.engine.deadlines import DeadlineIndex
from closedloop.streams.engine.dedup import DIGEST, Dedup
from closedloop.streams.engine.topology import (
    TOPOLOGY,
    Stage,
    Table,
    Wiring,
    apply_shared,
)

__all__ = [
    "DEDUP_PREFIX",
    "DUPLICATE",
    "META_PREFIX",
    "ROUNDS",
    "AnyRunner",
    "DedupChunk",
    "PartitionMeta",
    "RecordEffects",
    "StageRunner",
    "dedup_key",
    "is_partition_row",
    "meta_key",
    "runners",
]

S = TypeVar("S", bound=Keyed)

META_PREFIX: Final = "\x00partition:"
DEDUP_PREFIX: Final = "\x00dedup:"
ROUNDS: Final = "\x00rounds"
"""The deadline index's entry for the partition's testing rounds: their next report falls
due like any key's deadline, and fires before the keys due with it (:meth:`StageRunner.fire`)."""


def meta_key(partition: int) -> str:
    """The table key holding a partition's clock state (changelogged with the partition)."""
    return f"{META_PREFIX}{partition}"


def dedup_key(hour: int, chunk: int | str) -> str:
    """The table key of the ``chunk``-th batch of event ids remembered in ``hour``."""
    return f"{DEDUP_PREFIX}{hour}:{chunk}"


def is_partition_row(key: str) -> bool:
    """Is this table key a partition's own row (its clock state, its remembered event ids),
    not a stage key?"""
    return key.startswith((META_PREFIX, DEDUP_PREFIX))


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
    held: dict[str, int] = {}  # rejected inputs per district waiting for the clock to start


class DedupChunk(msgspec.Struct, array_like=True, gc=False):
    """Event ids (15-byte digests, concatenated) a partition remembered in one hour bucket
    during one batch: its de-duplication survives a restart through the changelog."""

    hour: int
    digests: bytes


class _Duplicate:
    """What :meth:`StageRunner.apply` never returns and :meth:`StageRunner.seen` stands for:
    an event already applied."""


DUPLICATE: Final = _Duplicate()


@dataclass(slots=True)
class RecordEffects(Effects):
    """What one record made on a stage partition, for the worker (and the partitioned bus)
    to send: what the rules made (they write into it: it is the context's ``out`` while the
    record is handled), and what the runner knows of the record."""

    rejection: Rejection | None = None
    duplicate: bool = False
    touched: set[str] = field(default_factory=set)
    mark: int | None = None  # the stage clock to announce downstream, if it moved a step
    broadcasts: list[bytes] = field(default_factory=list)  # shared facts, to every partition
    # what the record intake sends the data-entry stage (agents/sources.py routes)
    entered: list[tuple[str, Entered]] = field(default_factory=list)


class _Partition:
    __slots__ = ("chunks", "clock", "ctx", "dedup", "heard", "held", "index", "marked",
                 "marks", "number", "pending", "processed", "seen", "shared", "tick",
                 "topics")

    def __init__(self, number: int, lateness: int, retention: int, durable: bool) -> None:
        self.number = number
        self.clock = Watermark(lateness)
        self.index = DeadlineIndex()
        self.dedup = Dedup(retention, durable=durable)  # (topic, event_id) of its inputs
        self.chunks: dict[int, list[str]] = {}  # hour -> its rows of remembered ids
        self.marks: dict[str, int] = {}
        self.marked = MIN_EPOCH  # the last clock announced downstream
        self.tick = MIN_EPOCH  # the last tick applied
        self.topics: dict[str, int] = {}  # input log -> largest event time seen in it
        self.processed: dict[str, int] = {}  # input topic -> last offset applied
        self.pending: list[tuple[int, dict[str, int]]] = []  # ticks waiting for offsets
        self.seen: dict[str, int] = {}  # internal topic -> last offset applied (replay guard)
        self.shared = Shared()  # areas and rounds every person partition holds whole
        self.ctx: Context | None = None  # the rules' context, reused from record to record
        self.heard = False  # has every input log delivered something here yet?
        # rejected inputs naming a district but no instant, read before the clock started:
        # they count once it has (no report is known to be next before)
        self.held: dict[str, int] = {}


class StageRunner(Generic[S]):
    """One stage's partitions on this worker (or bus), over its keyed table.

    ``durable``: the table is changelogged (the worker, the partitioned bus), so each
    partition's clock state and remembered event ids are kept in it, as rows of their own
    (:func:`is_partition_row`), at every :meth:`flush`. ``shared``: the stage holds the
    shared facts whole and runs the testing rounds over its keys (the person stage).
    """

    def __init__(
        self,
        stage: Stage[S],
        policy: Policy,
        table: Table[S | PartitionMeta | DedupChunk],
        *,
        upstream: int,
        own_clock: bool = True,
        mark_every: int = 60,
        catch_up_before: int | None = None,
        inputs: tuple[str, ...] = (),
        committed: Callable[[str, int], int | None] | None = None,
        partitions: int = 1,
        shared: bool = False,
        durable: bool = True,
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
        self.rounds = shared  # holds the shared facts, and runs the rounds over its keys
        self.durable = durable
        self.steps = 0  # keyed applies and fires so far (what a line costs: the benchmarks)
        self.after_round_instant: Callable[[], None] | None = None
        """Called once a round instant's shares are made (replay passes them on at once:
        a round arriving after a year of hourly reports makes thousands)."""
        self._unsaved: set[int] = set()  # partitions whose clock state changed since a flush
        self._adopted = False

    # -- lifecycle ----------------------------------------------------------------------------

    def assign(self, partition: int, rows: Mapping[str, object] | None = None) -> None:
        """(Re)build a partition's deadline index and remembered event ids from the table
        after recovery (``rows``: the partition's rows, its keys' states and its own, when
        the caller has them at hand: a restore brings a million, read once here).

        A partition this worker already holds keeps its clock state in memory (the table's
        copy may be older); a new one loads it from the table.
        """
        part = self._part(partition)
        if rows is None:
            table = self.table
            rows = {key: table.get(key) for key in table}
        part.index.rebuild((key, st) for key, st in rows.items() if isinstance(st, Keyed))
        chunks = sorted((chunk.hour, key, chunk) for key, chunk in rows.items()
                        if isinstance(chunk, DedupChunk))
        part.chunks = {}
        part.dedup.reserve(sum(len(chunk.digests) for _, _, chunk in chunks) // DIGEST)
        for hour, key, chunk in chunks:
            part.dedup.load(hour, chunk.digests)
            part.chunks.setdefault(hour, []).append(key)
        if self.rounds and part.shared.rounds:
            rounds.prime(self.policy, part.shared, self._persons())
            part.index.schedule(ROUNDS, rounds.next_due(self.policy, part.shared))

    def revoke(self, partition: int) -> None:
        self.partitions.pop(partition, None)
        self._unsaved.discard(partition)

    def _save(self, part: _Partition) -> None:
        """The partition's clock state changed in a way a takeover must see: written to the
        table at the next :meth:`flush` (once per batch, not once per record)."""
        self._unsaved.add(part.number)

    def flush(self, enter: Callable[[int], object] | None = None) -> None:
        """Keep the clock state of each partition changed since the last flush, and the event
        ids it remembered or forgot, in the table, where they move with the partition;
        ``enter(partition)`` selects a partition of a table that keeps one per partition."""
        if not self.durable:
            return
        for number in sorted(self.partitions):
            part = self.partitions[number]
            part.index.compact()
            new, forgotten = part.dedup.take()
            if number not in self._unsaved and not new and not forgotten:
                continue
            if enter is not None:
                enter(number)
            if number in self._unsaved:
                self.table[meta_key(number)] = PartitionMeta(
                    topics=dict(part.topics), processed=dict(part.processed),
                    marks=dict(part.marks), pending=list(part.pending), tick=part.tick,
                    marked=part.marked, max_seen=part.clock.max_seen, clock=part.clock.value,
                    seen=dict(part.seen),
                    shared=part.shared if part.shared != Shared() else None,
                    held=dict(part.held),
                )
            if new or forgotten:
                self._save_ids(part, new, forgotten)
        self._unsaved.clear()

    def _save_ids(self, part: _Partition, new: dict[int, bytes], forgotten: list[int]
                  ) -> None:
        """One row per hour and batch for the ids remembered; the rows of hours forgotten
        go."""
        chunks = part.chunks
        for hour in forgotten:
            for key in chunks.pop(hour, ()):
                if key in self.table:
                    del self.table[key]
        for hour, digests in new.items():
            keys = chunks.setdefault(hour, [])
            key = dedup_key(hour, len(keys))
            while key in self.table:  # a row read back from an older worker's changelog
                key += "+"
            self.table[key] = DedupChunk(hour, digests)
            keys.append(key)

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
        part.held = dict(saved.held)
        if saved.shared is not None:
            part.shared = saved.shared
            part.index.schedule(ROUNDS, rounds.next_due(self.policy, part.shared))

    def open_deadlines(self) -> int:
        return sum(len(p.index) for p in self.partitions.values())

    # -- the steps every path takes -------------------------------------------------------------

    def seen(self, partition: int, topic: str, event_id: str, event_time: int) -> bool:
        """Has the partition applied (topic, event_id) already? If not, it remembers it now
        (CONTRACT.md §3: a second event with that id on that topic is ignored)."""
        part = self._part(partition)
        return part.dedup.seen(topic, event_id, event_time, self._effective(part))

    def apply(self, partition: int, key: str, item: object, event_time: int | None = None
              ) -> Rejection | None:
        """Apply one input to ``key`` at the partition's clock and index its next deadline;
        what is due fires at :meth:`fire` (an event is applied before the deadlines its
        own arrival makes due). ``event_time``: an input event's occurred_at, already in
        epoch seconds (the rules need not convert it again)."""
        part = self.partitions.get(partition) or self._part(partition)
        # an adopted context's clock is kept by its bus; any other is brought up to date
        ctx = part.ctx if self._adopted and part.ctx is not None else self._context(part)
        if event_time is not None:
            ctx.event, ctx.event_at = item, event_time
        self.steps += 1
        rejection, due = self.stage.apply(ctx, self.table, key, item, fire=False)
        part.index.schedule(key, due)
        return rejection

    def applier(self, partition: int) -> Callable[[str, object, int | None], Rejection | None]:
        """:meth:`apply` on an adopted partition, bound once: replay applies a few items a
        line, and a bound function skips looking the partition up each time."""
        part = self._part(partition)
        stage_apply, table, index = self.stage.apply, self.table, part.index

        def apply(key: str, item: object, event_time: int | None = None) -> Rejection | None:
            ctx = part.ctx
            assert ctx is not None  # adopted
            if event_time is not None:
                ctx.event, ctx.event_at = item, event_time
            self.steps += 1
            rejection, due = stage_apply(ctx, table, key, item, fire=False)
            index.schedule(key, due)
            return rejection

        return apply

    def fire(self, partition: int, touched: set[str] | None = None) -> None:
        """Fire what the partition's clock reached, the testing rounds first: a round's
        report as of an instant reads person states, which a ``gc`` at the same clock may
        thin out. What the rules make goes to the context's ``out``."""
        part = self._part(partition)
        ctx = self._context(part)
        clock = ctx.clock
        index = part.index
        if index.earliest > clock:
            return
        keys = index.pop_due(clock)
        if ROUNDS in keys:
            keys.remove(ROUNDS)
            self._fire_rounds(part, ctx, touched)
            if index.earliest <= clock:  # what the rounds' alerts opened, due already
                keys = list(dict.fromkeys((*keys, *index.pop_due(clock))))
        table, fire = self.table, self.stage.fire
        for key in keys:
            self.steps += 1
            index.schedule(key, fire(ctx, table, key))
            if touched is not None:
                touched.add(key)

    def index(self, partition: int) -> DeadlineIndex:
        """The partition's deadline index (its ``earliest`` says whether :meth:`fire` has
        anything to do: asked after every event)."""
        return self._part(partition).index

    def dedup(self, partition: int) -> Dedup:
        return self._part(partition).dedup


    def share(self, partition: int, event: Area | Round) -> bool:
        """A shared fact on the partition's copy of them; False if it changed nothing."""
        part = self._part(partition)
        if not apply_shared(self.policy, part.shared, event, self._persons()):
            return False
        if isinstance(event, Round):
            part.index.schedule(ROUNDS, rounds.next_due(self.policy, part.shared))
        return True

    # -- records of the worker and the partitioned bus ------------------------------------------

    def on_input(
        self,
        partition: int,
        key: str,
        item: object,
        event_time: int,
        event_id: str | None,
        *,
        topic: str | None = None,
        offset: int | None = None,
        clocked: bool = True,
        into: RecordEffects | None = None,
    ) -> RecordEffects:
        """An input for ``key``: de-duplicate, apply, then fire what the clock reached.

        ``topic``/``offset`` name an input topic (not internal forwards or contributions):
        its offset counts for pending ticks, its ``event_id`` is remembered, and unless
        ``clocked`` is False (an input the stage reads but does not own, an action on the
        tube stage) its event time moves that topic's watermark. A duplicate moves no
        clock. ``into``: effects to add to (the items of one pack).
        """
        part = self._part(partition)
        effects = RecordEffects() if into is None else into
        self._context(part).out = effects  # the rules write into the record's effects
        if topic is not None and offset is not None:
            part.processed[topic] = offset
        forward = event_id is None and topic is None
        if event_id is not None and topic is not None and part.dedup.seen(
                topic, event_id, event_time, self._effective(part)):
            effects.duplicate = True
            self._apply_ticks(part)
        else:
            if topic is not None and offset is not None:
                if clocked:
                    if event_time > part.topics.get(topic, MIN_EPOCH):
                        part.topics[topic] = event_time
                    self._observe(part)
                else:
                    self._apply_ticks(part)
            effects.rejection = self.apply(partition, key, item,
                                           None if forward else event_time)
            effects.touched.add(key)
        self._fire(part, effects)
        if part.pending or effects.mark is not None:
            self._save(part)
        return effects

    def on_counted(
        self, partition: int, key: str, item: object, event_time: int, topic: str, offset: int
    ) -> RecordEffects:
        """A record that counts (a report contribution): applied once per offset."""
        return self.on_counted_many(partition, [(key, item, event_time)], topic, offset)

    def on_counted_many(self, partition: int, items: Sequence[tuple[str, object, int]],
                        topic: str, offset: int) -> RecordEffects:
        """A record of (key, item, event time)s that count: applied once per offset.

        Kafka redelivers what was not committed before a rebalance or a crash; counts are not
        idempotent, so the partition remembers (in its table) the last offset it applied.
        """
        part = self._part(partition)
        if offset <= part.seen.get(topic, -1):
            return RecordEffects(duplicate=True)
        part.seen[topic] = offset
        effects = RecordEffects()
        for key, item, event_time in items:
            self.on_input(partition, key, item, event_time, None, into=effects)
        self._save(part)
        return effects

    def on_skipped(self, partition: int, topic: str, offset: int) -> RecordEffects:
        """An input message that was rejected still counts as read for pending ticks."""
        part = self._part(partition)
        part.processed[topic] = offset
        effects = RecordEffects()
        applied = self._apply_ticks(part)  # before the context: it may move the clock
        self._fire(part, effects, force_mark=applied)
        if part.pending or effects.mark is not None:
            self._save(part)
        return effects

    def reading_clock(self, partition: int) -> int:
        """Where the partition has read to, in event time: the latest event time of any of
        its input logs less ``allowed_lateness``, or its clock when a tick took it further;
        replay's one clock, as if the partition's logs were one. A rejected input without a
        time of its own counts there (its own clock, the slowest of its logs', may lag
        replay's by hours when one of them is sparse). MIN_EPOCH before any."""
        return self._reading(self._part(partition))

    def _reading(self, part: _Partition) -> int:
        topics = part.topics
        latest = (max(topics.values()) - self.policy.allowed_lateness if topics
                  else MIN_EPOCH)
        own = part.clock.value
        return latest if latest > own else own

    def hold_rejected(self, partition: int, district: str) -> None:
        """A rejected input naming ``district`` and no instant of its own, read before the
        partition had read anything: it counts one second after :meth:`reading_clock` once
        that has started (the effects of the record that starts it carry the count)."""
        part = self._part(partition)
        part.held[district] = part.held.get(district, 0) + 1
        self._save(part)

    def _release_held(self, part: _Partition, effects: RecordEffects) -> None:
        reading = self._reading(part)
        if reading == MIN_EPOCH:
            return
        effects.contributions.extend(rejected_contribution(district, reading + 1, count)
                                     for district, count in sorted(part.held.items()))
        part.held = {}
        self._save(part)

    def on_tick(
        self, partition: int, instant: int, after: dict[str, int] | None = None
    ) -> RecordEffects:
        """A tick moves this partition's own clock (and always announces it downstream).

        ``after`` (from ``clock --until``) holds the end offset of each input topic's
        partition when the tick was sent: the tick waits until those are applied, so that a
        topic consumed more slowly than another cannot be overtaken by it.
        """
        part = self._part(partition)
        part.pending.append((instant, after or {}))
        effects = RecordEffects()
        applied = self._apply_ticks(part)  # before the context: it may move the clock
        self._fire(part, effects, force_mark=applied)
        self._save(part)
        return effects

    def on_shared(self, partition: int, event: Area | Round) -> RecordEffects:
        """A shared fact broadcast by the tube stage: kept with the partition's clock state."""
        part = self._part(partition)
        effects = RecordEffects()
        if self.share(partition, event):
            self._save(part)
        self._fire(part, effects)
        return effects

    def on_mark(self, partition: int, source: str, clock: int) -> RecordEffects:
        """An upstream partition's clock reached ``clock``."""
        part = self._part(partition)
        if clock > part.marks.get(source, MIN_EPOCH):
            part.marks[source] = clock
        effects = RecordEffects()
        self._fire(part, effects)
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
        """Own watermark: the slowest input log's latest event time, less the lateness.

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
            part = self.partitions[partition] = _Partition(
                partition, self.policy.allowed_lateness, self.policy.dedup_retention,
                self.durable)
            self._load(part)
        return part

    def adopt(self, partition: int, clock: Watermark, shared: Shared, ctx: Context) -> None:
        """Run ``partition`` on a watermark, shared facts and a context held with other
        stages: replay's one-partition bus, where every stage reads the one input log in
        step, so one clock and one context serve them all. The bus keeps the context's
        clock at the watermark's (:meth:`apply` does not look)."""
        part = self._part(partition)
        part.clock, part.shared, part.ctx = clock, shared, ctx
        self._adopted = True

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
        if not self.upstream:
            return part.clock.value if self.own_clock else MIN_EPOCH
        marks = part.marks
        if len(marks) < self.upstream:
            return MIN_EPOCH
        upstream = min(marks.values())
        if not self.own_clock:
            return upstream
        own = part.clock.value
        return own if own < upstream else upstream

    def _context(self, part: _Partition) -> Context:
        """The partition's one context at its clock now: built once, not once per record
        (whoever reads its outputs empties them)."""
        ctx = part.ctx
        if ctx is None:
            ctx = part.ctx = Context(self.policy, self.cal, MIN_EPOCH,
                                     catch_up_before=self.catch_up_before)
        ctx.clock = self._effective(part)
        ctx.shared = part.shared
        return ctx

    def _fire(self, part: _Partition, effects: RecordEffects, force_mark: bool = False
              ) -> None:
        """:meth:`fire` into ``effects``, with the partition's name on its round shares, then
        the clock mark if the clock moved a step."""
        ctx = self._context(part)
        ctx.out = effects
        self.fire(part.number, effects.touched)
        if effects.round_parts:
            effects.round_parts[:] = [
                msgspec.structs.replace(share, source=part.number, of=self.of)
                for share in effects.round_parts]
        if part.held:
            self._release_held(part, effects)
        clock = ctx.clock
        if clock == MIN_EPOCH or (clock <= part.marked and not force_mark):
            return
        caught_up_with_tick = part.tick > part.marked and clock >= part.tick
        if force_mark or caught_up_with_tick or clock >= part.marked + self.mark_every:
            part.marked = max(part.marked, clock)
            effects.mark = clock

    def _fire_rounds(self, part: _Partition, ctx: Context, touched: set[str] | None) -> None:
        """The partition's shares of every round report due, and its persons' round_missed."""
        persons = self._persons()
        for key in sorted(rounds.fire_rounds(ctx, part.shared, persons,
                                             self.after_round_instant)):
            st = persons[key]  # an alert raised there opened its escalation: write it back
            self.table[key] = cast(S, st)
            part.index.schedule(key, next_due(st))
            if touched is not None:
                touched.add(key)
        part.index.schedule(ROUNDS, rounds.next_due(self.policy, part.shared))
        self._save(part)

    def _persons(self) -> Mapping[str, PersonState]:
        """The (entered) partition's persons, as the round rules read them: the table itself
        when it holds nothing else (replay's), else a view that leaves the partition's own
        rows out."""
        if not self.durable and isinstance(self.table, dict):
            return cast("dict[str, PersonState]", self.table)
        return _Persons(cast("Table[PersonState | PartitionMeta | DedupChunk]", self.table))


class _Persons(Mapping[str, PersonState]):
    """A partition's persons as the round rules read them: its keys over the stage's table.

    A state looked up by key is kept, so what a rule changed in it (an alert raised) can be
    written back; a scan (``values``, ``items``) keeps nothing: a table may decode every
    read afresh, and a partition's persons must not all be held at once."""

    __slots__ = ("loaded", "table")

    def __init__(self, table: Table[PersonState | PartitionMeta | DedupChunk]) -> None:
        self.table = table
        self.loaded: dict[str, PersonState] = {}

    def __getitem__(self, key: str) -> PersonState:
        st = self.loaded.get(key)
        if st is None:
            found = self.table.get(key)
            if not isinstance(found, PersonState):
                raise KeyError(key)
            st = self.loaded[key] = found
        return st

    def _names(self) -> list[str]:
        return [key for key in self.table if not is_partition_row(key)]

    def _scan(self) -> Iterator[tuple[str, PersonState]]:
        for key in self._names():
            st = self.loaded.get(key)
            if st is None:
                found = self.table.get(key)
                if not isinstance(found, PersonState):
                    continue
                st = found
            yield key, st

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

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


AnyRunner = (StageRunner[TubeState] | StageRunner[PersonState] | StageRunner[UnitKey]
             | StageRunner[EntryState] | StageRunner[ReportState])
"""A runner of any of the stages (the worker and the bus hold one of each)."""


def runners(
    policy: Policy,
    partitions: int,
    table_of: Callable[[str, type[Keyed]], Table[Any]],
    *,
    catch_up_before: int | None = None,
    committed: Callable[[str, int], int | None] | None = None,
    one_log: bool = False,
) -> dict[str, AnyRunner]:
    """One runner per stage of :data:`TOPOLOGY`, on ``partitions`` partitions of every topic.

    ``table_of(stage name, state type)`` gives each stage its keyed table. The stages that
    own input topics keep their own clock from them; the report stage's clock is its
    upstream marks. ``one_log``: replay's bus, one partition fed by one input log that
    every stage reads in step: no marks, one clock (:meth:`StageRunner.adopt`), nothing
    changelogged.
    """

    def one(wiring: Wiring) -> AnyRunner:
        stage = wiring.stage
        table = table_of(stage.name, stage.state)
        if one_log:
            return StageRunner(stage, policy, table, upstream=0, partitions=partitions,
                               shared=wiring.shared, durable=False)
        upstream = TOPOLOGY.upstream_partitions(stage.name, partitions)
        if not wiring.clocked:
            return StageRunner(stage, policy, table, upstream=upstream, own_clock=False,
                               partitions=partitions, shared=wiring.shared)
        return StageRunner(stage, policy, table, upstream=upstream,
                           catch_up_before=catch_up_before, inputs=wiring.owns,
                           committed=committed, partitions=partitions, shared=wiring.shared)

    return {wiring.name: one(wiring) for wiring in TOPOLOGY.stages}
