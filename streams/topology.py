"""The topology, wired once: three keyed stages and what flows between them.

    sampling, lab (key tube)  ──> tube stage ──forwards (key person)──> person stage
    travel, followup, cohort, action (key person) ─────────────────────> person stage
    action (key subject: a person or a tube) ──> tube stage and person stage
    tube + person stages ──contributions (key district)──> report stage ──> daily-report
    every stage ──> alerts; tube + person stages ──> escalations

An action is keyed by its alert's subject, which a tube or a person stage owns: both read
it, and each applies it only where that key holds the alert's escalation.

Both the embedded driver (replay, demo, tests, benchmarks) and the Faust worker call
:meth:`Stage.apply` and :meth:`Stage.fire` on their own keyed state; nothing here knows
whether the state is a dict or a Faust table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from closedloop.agents import closure, person, tubes
from closedloop.agents.requirements import Context, LapseHandler, fire_due, next_due
from closedloop.agents.state import (
    FORWARD_TYPES,
    Contribution,
    Keyed,
    PersonState,
    ReportState,
    TubeState,
    is_blank,
)
from closedloop.schemas.decode import Rejection
from closedloop.schemas.events import Action, Lab, Sampling

__all__ = ["PERSON", "REPORT", "STAGES_OF_TOPIC", "STAGE_OF_TOPIC", "TUBE", "AnyStage",
           "Stage", "Table"]

S = TypeVar("S", bound=Keyed)
S_in = TypeVar("S_in", contravariant=True)


class Table(Protocol[S_in]):
    """What a stage needs of its keyed table: a dict, a Faust table behind a codec, or a
    table that also holds other rows (the worker's partition clocks) it never reads."""

    def get(self, key: str, /) -> object: ...

    def __setitem__(self, key: str, value: S_in, /) -> None: ...

    def __delitem__(self, key: str, /) -> None: ...

    def __contains__(self, key: object, /) -> bool: ...


Apply = Callable[[Context, S, str, object], "Rejection | None"]


@dataclass(frozen=True, slots=True)
class Stage(Generic[S]):
    """A keyed stage: its state type, how an input changes a key's state, its lapse handlers."""

    name: str
    state: type[S]
    apply_fn: Apply[S]
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
        rejection = self.apply_fn(ctx, st, key, item)
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
        if fire:
            fire_due(ctx, st, key, self.handlers)
        if st.gone or is_blank(st):
            if key in table:
                del table[key]
            return None
        table[key] = st  # write back: a Faust table only changelogs assignments
        return next_due(st)


def _apply_tube(ctx: Context, st: TubeState, key: str, event: object) -> Rejection | None:
    if isinstance(event, Sampling):
        return tubes.on_sampling(ctx, st, key, event)
    if isinstance(event, Lab):
        tubes.on_lab(ctx, st, key, event)
    elif isinstance(event, Action):
        tubes.on_action(ctx, st, key, event)
    return None


def _apply_person(ctx: Context, st: PersonState, key: str, item: object) -> Rejection | None:
    if isinstance(item, FORWARD_TYPES):
        person.on_forward(ctx, st, key, item)
    elif isinstance(item, person.PERSON_EVENTS):
        person.on_event(ctx, st, key, item)
    return None


def _apply_report(ctx: Context, st: ReportState, key: str, item: object) -> Rejection | None:
    if isinstance(item, Contribution):
        closure.handle_contribution(ctx, st, key, item)
    return None


TUBE: Final = Stage("tube", TubeState, _apply_tube, tubes.HANDLERS)
PERSON: Final = Stage("person", PersonState, _apply_person, person.HANDLERS)
REPORT: Final = Stage("report", ReportState, _apply_report, closure.HANDLERS)

AnyStage = Stage[TubeState] | Stage[PersonState] | Stage[ReportState]

STAGE_OF_TOPIC: Final[dict[str, AnyStage]] = {
    "sampling": TUBE,
    "lab": TUBE,
    "travel": PERSON,
    "followup": PERSON,
    "cohort": PERSON,
    "action": PERSON,
}
"""The stage that owns each input topic: it counts, dead-letters and clocks the topic."""

STAGES_OF_TOPIC: Final[dict[str, tuple[AnyStage, ...]]] = {
    **{topic: (stage,) for topic, stage in STAGE_OF_TOPIC.items()},
    "action": (TUBE, PERSON),
}
"""Every stage an input reaches: an action goes wherever its subject's escalation may be."""
