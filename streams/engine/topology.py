"""The topology, wired once: three keyed stages and what flows between them.

    sampling, lab (key tube)  ──> tube stage ──forwards (key person)──> person stage
    travel, followup, cohort, action (key person) ─────────────────────> person stage
    action (key subject: a person or a tube) ──> tube stage and person stage
    tube + person stages ──contributions (key district)──> report stage ──> daily-report
    area, round (shared) ──> tube stage ──broadcast──> every person partition
    person stage ──round shares (key round_id)──> report stage ──> round-report
    every stage ──> alerts; tube + person stages ──> escalations

An action is keyed by its alert's subject, which a tube or a person stage owns: both read
it, and each applies it only where that key holds the alert's escalation.

Both the embedded driver (replay, demo, tests, benchmarks) and the Faust worker call
:meth:`Stage.apply` and :meth:`Stage.fire` on their own keyed state; nothing here knows
whether the state is a dict or a Faust table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from closedloop.agents import closure, person, round_sum, rounds, tubes
from closedloop.agents.requirements import Context, LapseHandler, fire_due, next_due
from closedloop.agents.shared import Shared, apply_area
from closedloop.agents.state import (
    FORWARD_TYPES,
    Contribution,
    Keyed,
    PersonState,
    ReportState,
    RoundPart,
    Sampled,
    TubeState,
    is_blank,
)
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Action, Area, Lab, Round, Sampling
from closedloop.schemas.policy import Policy

__all__ = [
    "CONTRIBUTIONS_TOPIC",
    "FORWARDS_TOPIC",
    "PERSON",
    "READERS",
    "REPORT",
    "SHARED_TOPICS",
    "STAGES_OF_TOPIC",
    "STAGE_OF_TOPIC",
    "TICK_TOPICS",
    "TUBE",
    "WIRING",
    "AnyStage",
    "Stage",
    "Table",
    "Wiring",
    "apply_shared",
    "partition_of",
]

S = TypeVar("S", bound=Keyed)
S_in = TypeVar("S_in", contravariant=True)


class Table(Protocol[S_in]):
    """What a stage needs of its keyed table: a dict, a Faust table behind a codec, or a
    table that also holds other rows (the worker's partition clocks) it never reads."""

    def get(self, key: str, /) -> object: ...

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
    handlers."""

    name: str
    state: type[S]
    appliers: Mapping[type, Apply[S]]
    handlers: Mapping[str, LapseHandler[S]]

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
        gone = key in ctx.gone  # lapse_gc decided to forget the key
        if gone:
            ctx.gone.discard(key)
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
), person.HANDLERS)
REPORT: Final = Stage("report", ReportState, _appliers(
    ((Contribution,), closure.handle_contribution), ((RoundPart,), _on_round_part),
), closure.HANDLERS)

AnyStage = Stage[TubeState] | Stage[PersonState] | Stage[ReportState]

STAGE_OF_TOPIC: Final[dict[str, AnyStage]] = {
    "sampling": TUBE,
    "lab": TUBE,
    "travel": PERSON,
    "followup": PERSON,
    "cohort": PERSON,
    "action": PERSON,
    "population": PERSON,
    "checkpoint": PERSON,
    "clinic": PERSON,
}
"""The stage that owns each input topic: it counts, dead-letters and clocks the topic."""

STAGES_OF_TOPIC: Final[dict[str, tuple[AnyStage, ...]]] = {
    **{topic: (stage,) for topic, stage in STAGE_OF_TOPIC.items()},
    "action": (TUBE, PERSON),
    **{topic: () for topic in ("area", "round")},
}
"""Every stage an input reaches: an action goes wherever its subject's escalation may be.
``area`` and ``round`` reach none as keyed input: they are SHARED facts."""

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


# -- how the stages are wired on a partitioned bus (Kafka, or the in-memory bus of the tests) --

FORWARDS_TOPIC: Final = "person-tests"
"""Where the tube stage re-keys what a person must know (key person_id); the person stage's
internal topic also carries the tube stage's clock marks and the person ticks."""
CONTRIBUTIONS_TOPIC: Final = "report-parts"
"""Report contributions (key district), testing rounds' shares (key round_id) and the clock
marks of both upstream stages."""
TICK_TOPICS: Final = ("tube-ticks", FORWARDS_TOPIC)
"""A tick (``clock --until``, or the wall clock) goes to every partition of these."""


@dataclass(frozen=True, slots=True)
class Wiring:
    """One stage on a partitioned bus: what it reads, owns, and whom it marks.

    ``owns``: input topics whose events the stage counts, dead-letters and clocks by.
    ``quiet``: input topics it applies when valid but leaves to their owner otherwise (an
    action reaches the tube stage quietly). ``internal``: its internal topic (ticks, marks,
    forwards or contributions, fill requests). ``upstream``: how many stages mark it, each
    from every partition. ``marks``: the internal topics its clock marks go to.
    ``broadcasts``: SHARED_TOPICS it validates (dead-letters, counts) and sends whole to every
    person partition on its internal topic, ahead of its next clock mark, so a person stage
    whose clock passed T holds every shared fact the tube stages read before they passed T.
    They do not move its clock (an area record may come once a month).
    """

    stage: AnyStage
    owns: tuple[str, ...]
    quiet: tuple[str, ...]
    internal: str
    upstream: int
    marks: tuple[str, ...]
    broadcasts: tuple[str, ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        return (*self.owns, *self.quiet, *self.broadcasts, self.internal)


WIRING: Final[dict[str, Wiring]] = {
    "tube": Wiring(TUBE, owns=("sampling", "lab"), quiet=("action",), internal="tube-ticks",
                   upstream=0, marks=(FORWARDS_TOPIC, CONTRIBUTIONS_TOPIC),
                   broadcasts=SHARED_TOPICS),
    "person": Wiring(PERSON, owns=("travel", "followup", "cohort", "action", "population",
                                   "checkpoint", "clinic"), quiet=(),
                     internal=FORWARDS_TOPIC, upstream=1, marks=(CONTRIBUTIONS_TOPIC,)),
    "report": Wiring(REPORT, owns=(), quiet=(), internal=CONTRIBUTIONS_TOPIC, upstream=2,
                     marks=()),
}
"""The worker's three agents and the in-memory bus are both built from this table."""

READERS: Final[dict[str, tuple[str, ...]]] = {
    topic: tuple(name for name, wiring in WIRING.items() if topic in wiring.reads)
    for topic in dict.fromkeys(topic for wiring in WIRING.values() for topic in wiring.reads)
}
"""The stages that read each topic (an action reaches both keyed stages)."""


@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as producers use).

    kafka-python's murmur2 is pure Python, and a batch re-keys the same persons and
    districts again and again: the latest keys are remembered."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
