"""The topology, wired once: three keyed stages and what flows between them.

    sampling, lab (key tube)  ──> tube stage ──forwards (key person)──> person stage
    travel, followup, cohort, action (key person) ─────────────────────> person stage
    action (key subject: a person or a tube) ──> tube stage and person stage
    tube + person stages ──contributions (key district)──> report stage ──> daily-report
    area, round (shared) ──> tube stage ──broadcast──> every person partition
    person stage ──round shares (key round_id)──> report stage ──> round-report
    inspection (key unit) ──> supervision stage ──contributions──> report stage
                              supervision stage ──> unit-status
    tube + person stages ──entries (key <topic>:<source>, lab_id)──> entry stage
    every stage ──> alerts; tube + person stages ──> escalations

Records reach the data-entry stage from the record intake: the stage that owns an input
topic, once it has applied a valid record that is no duplicate, sends what
:func:`~closedloop.agents.sources.routes` makes of it with the record's own receipt (replay:
the line's ``received_at``; the worker: its ``received_at`` header, or the timestamp of a
record without one): an ``Entered`` keyed ``<topic>:<source>`` when its entry lag is known
and it has a source, on the entry stage's internal topic; and its district's entry
contribution to the report stage. A lab's silence is told by the tube stage, which sees
every lab record of a tube: a ``LabTold`` keyed by lab_id with how the lab's count of
waiting tubes changes (when a tube's wait begins, at a deadline of the tube, and ends) and
its reports (:mod:`closedloop.agents.lab_waits`), never a tube id. Only the
tube stage (sampling, lab) and the person stage (followup, checkpoint, clinic) own topics
whose records have a source, so the entry stage's clock is theirs. Replay combines a run's
``Entered`` parts and entry contributions per key and day before applying them
(:mod:`closedloop.agents.combine`, one step for many lines), and the worker's entry and
report stages combine each pack's the same way; both leave the states one by one would.
A rejected input whose value names a valid district sends that district's report its
``entries_rejected``, at the value's own occurred_at (or another time it names) when
plausible, else as read, held by the reading partition until it has read something
(:func:`~closedloop.agents.sources.rejected_part`). The entry stage reads actions quietly:
a ``late_entries`` or ``lab_silent`` alert's subject is its key.

An action is keyed by its alert's subject, which a tube or a person stage owns: both read
it, and each applies it only where that key holds the alert's escalation.

Every runtime path (the worker, the in-memory buses of replay and the tests) calls
:meth:`Stage.apply` and :meth:`Stage.fire` on its own keyed state, wired as
:data:`TOPOLOGY` says; nothing here knows where the state is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

import msgspec

from closedloop.agents import closure, person, round_sum, rounds, sources, tubes, units
from closedloop.agents.entry import EntryState
from closedloop.agents.requirements import Context, LapseHandler, fire_due, next_due
from closedloop.agents.shared import Shared, apply_area
from closedloop.agents.state import (
    FORWARD_TYPES,
    Contribution,
    Keyed,
    LabTold,
    PersonState,
    ReportState,
    RoundPart,
    Sampled,
    TubeState,
    is_blank,
)
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import KEY_FIELD, Action, Area, Inspection, Lab, Round, Sampling
from closedloop.schemas.policy import Policy

__all__ = [
    "DEADLETTER_RETENTION_DAYS",
    "ENTRY",
    "INPUT_RETENTION_DAYS",
    "INTERNAL_RETENTION_DAYS",
    "OUTPUT_RETENTION_DAYS",
    "PERSON",
    "REPORT",
    "SHARED_TOPICS",
    "SUPERVISION",
    "TOPOLOGY",
    "TUBE",
    "AnyStage",
    "Stage",
    "Table",
    "Topic",
    "Topology",
    "Wiring",
    "apply_shared",
    "partition_of",
]

S = TypeVar("S", bound=Keyed)
S_in = TypeVar("S_in", contravariant=True)


class Table(Protocol[S_in]):
    """What a stage needs of its keyed table: a dict, or the worker's store of the partition
    being worked on, which also holds the partition's own rows (its clock state and the
    event ids it remembered) that no stage reads."""

    def get(self, key: str, /) -> object: ...

    def __iter__(self) -> Iterator[str]: ...

    def __setitem__(self, key: str, value: S_in, /) -> None: ...

    def __delitem__(self, key: str, /) -> None: ...

    def __contains__(self, key: object, /) -> bool: ...


Apply = Callable[[Context, S, str, Any], "Rejection | None"]
"""How one kind of input changes a key's state: ``(ctx, state, key, item) -> rejection``."""


@dataclass(frozen=True, slots=True)
class Stage(Generic[S]):
    """A keyed stage: its state type, how each type of input changes a key's state (looked
    up by the input's exact type: one dict lookup, not a chain of isinstance tests and
    dispatching calls per input; a type it does not list changes nothing), its lapse
    handlers, and what a key's state says on a status topic (:attr:`Wiring.status`)."""

    name: str
    state: type[S]
    appliers: Mapping[type, Apply[S]]
    handlers: Mapping[str, LapseHandler[S]]
    status: Callable[[Context, str, S], msgspec.Struct] | None = None

    def apply(
        self,
        ctx: Context,
        table: Table[S],
        key: str,
        item: object,
        *,
        fire: bool = True,
    ) -> tuple[Rejection | None, int | None]:
        """Apply one input to ``key``, fire what is due, store; returns (rejection, next due).

        ``fire=False`` defers firing to the stage's own turn: the report stage must not pass
        a cut-off before every upstream deadline up to the clock has contributed.
        """
        st = table.get(key)
        if not isinstance(st, self.state):
            st = self.state()
        apply = self.appliers.get(type(item))
        rejection = None if apply is None else apply(ctx, st, key, item)
        return rejection, self._finish(ctx, table, key, st, fire)

    def fire(self, ctx: Context, table: Table[S], key: str) -> int | None:
        """Fire ``key``'s deadlines at or before the clock; returns its next due instant."""
        st = table.get(key)
        if not isinstance(st, self.state):
            return None
        return self._finish(ctx, table, key, st, True)

    def _finish(
        self, ctx: Context, table: Table[S], key: str, st: S, fire: bool
    ) -> int | None:
        due = next_due(st)
        if fire and due is not None and due <= ctx.clock:  # most inputs fire nothing
            fire_due(ctx, st, key, self.handlers)
            due = next_due(st)
        gone = key in ctx.out.gone  # lapse_gc decided to forget the key
        if gone:
            ctx.out.gone.discard(key)
        if gone or (due is None and is_blank(st)):
            if key in table:
                del table[key]
            return None
        table[key] = st  # write back: a Faust table only changelogs assignments
        return due


def _on_round_part(ctx: Context, st: ReportState, key: str, item: RoundPart) -> None:
    round_sum.on_part(ctx, st, item)


def _tracked(apply: Apply[PersonState]) -> Apply[PersonState]:
    """``apply`` for a fact a testing round counts (rounds.FACTS): while a round is open, its
    progress counts follow the change; without one, nothing more is done."""

    def tracked(ctx: Context, st: PersonState, key: str, item: Any) -> Rejection | None:
        if not ctx.shared.rounds:
            return apply(ctx, st, key, item)
        with rounds.tracking(ctx, st, key):
            return apply(ctx, st, key, item)

    return tracked


def _appliers(*pairs: tuple[tuple[type, ...], Apply[S]]) -> dict[type, Apply[S]]:
    return {kind: apply for kinds, apply in pairs for kind in kinds}


TUBE: Final = Stage("tube", TubeState, _appliers(
    ((Sampling,), tubes.on_sampling), ((Lab,), tubes.on_lab), ((Action,), tubes.on_action),
), tubes.HANDLERS)
PERSON: Final = Stage("person", PersonState, _appliers(
    ((Sampled,), _tracked(person.on_forward)),
    (tuple(t for t in FORWARD_TYPES if t not in rounds.FACTS), person.on_forward),
    (tuple(t for t in person.PERSON_EVENTS if t in rounds.FACTS), _tracked(person.on_event)),
    (tuple(t for t in person.PERSON_EVENTS if t not in rounds.FACTS), person.on_event),
), person.HANDLERS, person.person_status)
SUPERVISION: Final = Stage("supervision", units.UnitKey, _appliers(
    ((Inspection,), units.on_inspection), ((Action,), units.on_action),
), units.HANDLERS, units.unit_status)
ENTRY: Final = Stage("entry", EntryState, _appliers(
    ((sources.Entered,), sources.on_entered), ((sources.EnteredDay,), sources.on_entered_day),
    ((LabTold,), sources.on_lab_told),
    ((Action,), sources.on_action),
), sources.HANDLERS)
REPORT: Final = Stage("report", ReportState, _appliers(
    ((Contribution,), closure.handle_contribution), ((closure.EntryLags,),
                                                      closure.handle_entry_lags),
    ((RoundPart,), _on_round_part),
), closure.HANDLERS)

AnyStage = (Stage[TubeState] | Stage[PersonState] | Stage[units.UnitKey]
            | Stage[EntryState] | Stage[ReportState])

SHARED_TOPICS: Final = ("area", "round")
"""Inputs every person partition holds whole (agents/shared.py), not keyed state."""


def apply_shared(policy: Policy, shared: Shared, event: Area | Round,
                 persons: Mapping[str, PersonState]) -> bool:
    """A record of a SHARED_TOPICS topic on what a person partition (or the embedded driver)
    holds: a county's level, or a round primed from ``persons``; False if it changed nothing.
    """
    if isinstance(event, Area):
        return apply_area(shared, event, policy.state_retention)
    return rounds.on_round(policy, shared, event, persons)


# -- the topology: every topic, and how the stages are wired on a partitioned bus -------------

INPUT_RETENTION_DAYS: Final = 30
OUTPUT_RETENTION_DAYS: Final = 90
DEADLETTER_RETENTION_DAYS: Final = 14
INTERNAL_RETENTION_DAYS: Final = 7

Role = Literal["input", "internal", "output"]


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of the deployment: ``{prefix}.{name}.v1`` on Kafka.

    ``key`` names what its records are keyed by (a field of the record; None: keyless, placed
    by partition). A compacted topic keeps the latest record per key and has no retention
    (``retention_days`` None); the others drop records older than ``retention_days``.
    ``title`` and ``about`` document an internal topic (the contract documents the others).
    """

    name: str
    role: Role
    key: str | None
    compact: bool = False
    retention_days: int | None = None
    title: str = ""
    about: str = ""


@dataclass(frozen=True, slots=True)
class Wiring:
    """One keyed stage on a partitioned bus: what it reads, and what it is sent.

    ``owns``: input topics whose events the stage counts, dead-letters and clocks by.
    ``quiet``: input topics it applies when valid but leaves to their owner otherwise (an
    action reaches the tube stage quietly). ``broadcasts``: SHARED_TOPICS it validates
    (dead-letters, counts) and sends whole to every partition of each stage that is
    ``shared``, ahead of its next clock mark, so a person stage whose clock passed T holds
    every shared fact the tube stages read before they passed T; they move no clock (an area
    record may come once a month). ``internal``: its internal topic: ticks, the clock marks
    of every partition of each ``upstream`` stage, and the items of the types it
    ``receives`` from other stages (forwards, contributions, round shares). ``counted``: what
    it receives is counted, not idempotent, so a record of its internal topic is applied
    once per offset. ``status``: the output topic that gets the state of each key a batch
    touched (person-status).
    """

    stage: Stage[Any]  # any state type: the runner built for it is typed by it
    internal: str
    owns: tuple[str, ...] = ()
    quiet: tuple[str, ...] = ()
    broadcasts: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    receives: tuple[type, ...] = ()
    counted: bool = False
    shared: bool = False
    status: str | None = None

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input topics it reads: a tick waits, in each partition, for their records sent
        before it."""
        return (*self.owns, *self.quiet, *self.broadcasts)

    @property
    def reads(self) -> tuple[str, ...]:
        return (*self.inputs, self.internal)

    @property
    def clocked(self) -> bool:
        """Does the stage keep a clock of its own inputs (which ticks move)?"""
        return bool(self.owns)


@dataclass(frozen=True)
class Topology:
    """The stages, in upstream-first order, and every topic; the rest is derived from them:
    who reads a topic and who owns it, where a stage's clock marks go, which internal topics
    a tick goes to, and on which topic an item a stage makes travels."""

    topics: tuple[Topic, ...]
    stages: tuple[Wiring, ...]

    def __post_init__(self) -> None:
        topic = {t.name: t for t in self.topics}
        wiring = {w.name: w for w in self.stages}
        marks = {w.name: tuple(down.internal for down in self.stages if w.name in down.upstream)
                 for w in self.stages}
        route = {kind: w.internal for w in self.stages for kind in w.receives}
        shared_to = tuple(w.internal for w in self.stages if w.shared)
        written = {*(name for names in marks.values() for name in names), *route.values(),
                   *shared_to}
        derived = {
            "topic": topic,
            "wiring": wiring,
            "readers": {name: tuple(w.name for w in self.stages if name in w.reads)
                        for name in topic if any(name in w.reads for w in self.stages)},
            "owner": {name: w.name for w in self.stages for name in (*w.owns, *w.broadcasts)},
            "appliers": {name: tuple(w.stage for w in self.stages if name in (*w.owns,
                                                                              *w.quiet))
                         for name in topic if topic[name].role == "input"},
            "marks": marks,
            "ticks": tuple(w.internal for w in self.stages if w.clocked),
            "route": route,
            "shared_to": shared_to,
            "inputs": tuple(t.name for t in self.topics if t.role == "input"),
            "internal": tuple(t.name for t in self.topics if t.role == "internal"),
            "carried": tuple(t.name for t in self.topics if t.name in written),
            "outputs": tuple(t.name for t in self.topics if t.role == "output"),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        read = {name for w in self.stages for name in w.reads}
        unknown = sorted(read - topic.keys())
        if unknown:
            raise ValueError(f"stages read topics the topology does not hold: {unknown}")
        for w in self.stages:
            if topic[w.internal].role != "internal":
                raise ValueError(f"{w.name}: {w.internal} is not an internal topic")
            early = [up for up in w.upstream if up not in wiring
                     or self.stages.index(wiring[up]) >= self.stages.index(w)]
            if early:
                raise ValueError(f"{w.name}: upstream stages must come before it: {early}")

    # derived in __post_init__ (declared for the type checker)
    topic: dict[str, Topic] = field(init=False, repr=False, compare=False)
    wiring: dict[str, Wiring] = field(init=False, repr=False, compare=False)
    readers: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    """Topic -> the stages that read it (an action reaches both keyed stages)."""
    owner: dict[str, str] = field(init=False, repr=False, compare=False)
    """Input topic -> the stage that counts, dead-letters and clocks it."""
    appliers: dict[str, tuple[AnyStage, ...]] = field(init=False, repr=False, compare=False)
    """Input topic -> every stage its events are applied to as keyed input (an action goes
    wherever its subject's escalation may be; a shared topic to none: its facts are held
    whole, and a topic no stage reads yet to none)."""
    marks: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    """Stage -> the internal topics its clock marks go to (every partition of each)."""
    ticks: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The internal topics a tick (``clock --until``, the wall clock) goes to."""
    route: dict[type, str] = field(init=False, repr=False, compare=False)
    """Item type -> the internal topic it travels on to the stage that receives it."""
    shared_to: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The internal topics a broadcast shared fact goes to (every partition of each)."""
    inputs: tuple[str, ...] = field(init=False, repr=False, compare=False)
    internal: tuple[str, ...] = field(init=False, repr=False, compare=False)
    carried: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The internal topics the stages write: clock marks, items, broadcasts (the ticks
    alone come from outside: ``clock --until``)."""
    outputs: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def upstream_partitions(self, stage: str, partitions: int) -> int:
        """How many partitions mark ``stage``: every partition of each upstream stage."""
        return len(self.wiring[stage].upstream) * partitions


def _inputs() -> tuple[Topic, ...]:
    """The contract's input topics (CONTRACT.md §3), keyed as it says; the roster's two are
    compacted (the latest record per person is who they are now)."""
    return tuple(
        Topic(name, "input", key, compact=name in ("cohort", "population"),
              retention_days=None if name in ("cohort", "population") else INPUT_RETENTION_DAYS)
        for name, key in KEY_FIELD.items())


FORWARDS_TOPIC: Final = "person-tests"
CONTRIBUTIONS_TOPIC: Final = "report-parts"
ENTRIES_TOPIC: Final = "entry-parts"

TOPOLOGY: Final = Topology(
    topics=(
        *_inputs(),
        Topic(FORWARDS_TOPIC, "internal", "person_id", retention_days=INTERNAL_RETENTION_DAYS,
              title="Person test record",
              about="Internal: the tube join re-keys what a person needs to know (sampled, "
              "result, retest needed) by person_id, so the person loop reads it "
              "co-partitioned with travel, followup and cohort. Not a public contract: its "
              "records belong to the engine and may change within v1."),
        Topic(CONTRIBUTIONS_TOPIC, "internal", "district",
              retention_days=INTERNAL_RETENTION_DAYS,
              title="Report contribution or clock mark",
              about="Internal: what the tube and person loops contribute to each district's "
              "daily closure report (counts and gauge changes at event time), and the clock "
              "marks of every upstream partition, so the report stage passes a cut-off only "
              "when every loop has caught up with it. Not a public contract."),
        Topic("tube-ticks", "internal", None, retention_days=INTERNAL_RETENTION_DAYS,
              title="Clock tick",
              about="Internal: clock ticks sent to every partition of the tube join (by the "
              "leader's wall-clock timer, or by `closedloop clock --until`), so its deadlines "
              "fire while inputs are idle. Co-partitioned with sampling and lab. Person-loop "
              "ticks travel on person-tests. Not a public contract."),
        Topic("unit-ticks", "internal", None, retention_days=INTERNAL_RETENTION_DAYS,
              title="Clock tick",
              about="Internal: clock ticks sent to every partition of the supervision stage "
              "(keyed by unit_id: the inspection topic's partitions), so its deadlines fire "
              "while inspections are idle. Not a public contract."),
        Topic(ENTRIES_TOPIC, "internal", "subject", retention_days=INTERNAL_RETENTION_DAYS,
              title="Data-entry record or clock mark",
              about="Internal: what the data-entry stage judges, re-keyed where the records "
              "are read: a record of known entry lag keyed by `<topic>:<source>` (its "
              "source's day), what a lab's tubes tell it keyed by lab_id (how many wait, its "
              "reports: the lab's silence), "
              "and the clock marks of every tube and person partition. Co-partitioned with "
              "action (keyed by subject). Not a public contract."),
        Topic("alerts", "output", "subject", retention_days=OUTPUT_RETENTION_DAYS),
        Topic("escalations", "output", "subject", retention_days=OUTPUT_RETENTION_DAYS),
        Topic("person-status", "output", "person_id", compact=True),
        Topic("daily-report", "output", "district", retention_days=OUTPUT_RETENTION_DAYS),
        Topic("deadletter", "output", None, retention_days=DEADLETTER_RETENTION_DAYS),
        Topic("round-report", "output", "round_id", retention_days=OUTPUT_RETENTION_DAYS),
        # a unit's supervision findings for the ledger (not a contract topic, like escalations)
        Topic("unit-status", "output", "unit_id", compact=True),
    ),
    stages=(
        Wiring(TUBE, "tube-ticks", owns=("sampling", "lab"), quiet=("action",),
               broadcasts=SHARED_TOPICS),
        Wiring(PERSON, FORWARDS_TOPIC, owns=("travel", "followup", "cohort", "action",
                                              "population", "checkpoint", "clinic"),
               upstream=("tube",), receives=FORWARD_TYPES, shared=True,
               status="person-status"),
        # inspections, keyed by unit; an action on a unit's alert reaches it as on a tube's
        Wiring(SUPERVISION, "unit-ticks", owns=("inspection",), quiet=("action",),
               status="unit-status"),
        # a source's day and a lab's silence, whatever key their records arrive under; an
        # action on their alerts reaches it as on a unit's
        Wiring(ENTRY, ENTRIES_TOPIC, quiet=("action",), upstream=("tube", "person"),
               receives=(sources.Entered, LabTold), counted=True),
        Wiring(REPORT, CONTRIBUTIONS_TOPIC, upstream=("tube", "person", "supervision"),
               receives=(Contribution, RoundPart), counted=True),
    ),
)
"""The worker's consume loop, the in-memory bus, the embedded driver, ``clock --until``, the
topics a worker declares and the AsyncAPI document are all built from this value: a new loop
is its stage, its topics and one :class:`Wiring` here."""


PLACED: Final = 1 << 16
"""Keys whose partition is remembered before the table starts anew."""
_PLACED: dict[int, dict[str, int]] = {}  # partition count -> key -> its partition


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as producers use).

    kafka-python's murmur2 is pure Python (~3 µs a key), and a batch re-keys the same
    persons and districts again and again: the latest keys are remembered, in a plain dict
    (~40 bytes a key, where an ``lru_cache`` entry took ~150: the worker's table is full on
    a large city) that starts anew once it holds ``PLACED`` keys."""
    placed = _PLACED.get(partitions)
    if placed is None:
        placed = _PLACED[partitions] = {}
    partition = placed.get(key)
    if partition is None:
        from kafka.partitioner.default import murmur2

        partition = int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
        if len(placed) >= PLACED:
            placed.clear()
        placed[key] = partition
    return partition
