"""The embedded driver: the topology in-process, in Kafka's order semantics.

Like Kafka Streams' TopologyTestDriver, it is a test driver, not a second runtime: one
partition per stage, inputs applied in file order (so per key, in order), forwards and
contributions delivered to the next stage at once. ``replay``, ``demo``, the tests and the
benchmarks all run through it: ``pipe(topic, value)``, ``advance_to(T)``, ``drain()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from sys import intern
from typing import Any, Final, Generic, TypeVar

import msgspec

from closedloop.agents import rounds
from closedloop.agents.calendar import Calendar
from closedloop.agents.escalation import action_outcome
from closedloop.agents.requirements import Context, next_due
from closedloop.agents.shared import Shared
from closedloop.agents.state import Keyed, PersonState, ReportState, TubeState
from closedloop.schemas.decode import Rejection, dead_letter, decode_line, validate_event
from closedloop.schemas.events import KEY_FIELD, Action, Area, Event, Round
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.outputs import Alert, DailyReport, DeadLetter, RoundReport
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import Watermark
from closedloop.streams.engine.deadlines import DeadlineIndex
from closedloop.streams.engine.dedup import Dedup
from closedloop.streams.engine.topology import (
    PERSON,
    REPORT,
    TOPOLOGY,
    TUBE,
    Stage,
    apply_shared,
)

__all__ = ["EmbeddedDriver", "Origin", "Outputs"]

S = TypeVar("S", bound=Keyed)

_APPLIED = {topic: f"applied:{topic}" for topic in TOPOLOGY.inputs}

SPILL_ROWS: Final = 100_000
"""Round-report rows held before :attr:`EmbeddedDriver.spill` is called (a round arriving
after a year of hourly reports over many districts would otherwise hold them all); a report
without rows counts as one (300 such rounds with nobody in scope make 2.6 M reports)."""


class Origin(msgspec.Struct, frozen=True, gc=False):
    """Where an input came from, for its dead letter (``replay`` builds one per line: a
    struct is built in C, where a named tuple's ``__new__`` is Python, ~6x the cost)."""

    line: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(slots=True)
class Outputs:
    alerts: list[Alert] = field(default_factory=list)
    escalations: list[Alert] = field(default_factory=list)  # kind escalated, not on alerts
    reports: list[DailyReport] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)  # accepted, for the ledger's lifecycle
    round_reports: list[RoundReport] = field(default_factory=list)  # in the order raised


class _StageRun(Generic[S]):
    """One stage's keyed state and deadline index; ``steps`` counts its applies and fires
    (the benchmarks' floor reads it: what a line costs depends on how many keys it moves)."""

    __slots__ = ("index", "stage", "steps", "table")

    def __init__(self, stage: Stage[S]) -> None:
        self.stage = stage
        self.table: dict[str, S] = {}
        self.index = DeadlineIndex()
        self.steps = 0

    def apply(self, ctx: Context, key: str, item: object, *, fire: bool = True
              ) -> Rejection | None:
        """Apply one input to ``key`` and index its next deadline."""
        self.steps += 1
        rejection, due = self.stage.apply(ctx, self.table, key, item, fire=fire)
        self.index.schedule(key, due)
        return rejection

    def fire(self, ctx: Context, key: str) -> None:
        self.steps += 1
        self.index.schedule(key, self.stage.fire(ctx, self.table, key))


class EmbeddedDriver:
    """Runs the three stages in one process on plain dicts."""

    def __init__(self, policy: Policy, received_at: float | None = None) -> None:
        """``received_at``: when the inputs were received (epoch seconds), for the
        implausible-time rule; None leaves its upper bound unchecked."""
        self.policy = policy
        self.received_at = received_at
        self.cal = Calendar(policy.zone, policy.daily_cutoff)
        self.clock = Watermark(policy.allowed_lateness)
        self.dedup = Dedup(policy.dedup_retention)
        self.tube: _StageRun[TubeState] = _StageRun(TUBE)
        self.person: _StageRun[PersonState] = _StageRun(PERSON)
        self.report: _StageRun[ReportState] = _StageRun(REPORT)
        self._runs: dict[str, _StageRun[TubeState] | _StageRun[PersonState]] = {
            TUBE.name: self.tube, PERSON.name: self.person}
        self._upstream_first: tuple[
            _StageRun[TubeState], _StageRun[PersonState], _StageRun[ReportState]] = (
            self.tube, self.person, self.report)
        # Each input topic's stage runs, looked up once per event rather than per stage.
        self._topic_runs: dict[str, tuple[_StageRun[TubeState] | _StageRun[PersonState], ...]] = {
            topic: tuple(self._runs[stage.name] for stage in stages)
            for topic, stages in TOPOLOGY.appliers.items()}
        self.shared = Shared()
        self._rounds_due: int | None = None  # the earliest round report (agents/rounds.py)
        self.out = Outputs()  # replaced by drain() only, together with the context filling it
        self._ctx = self._context()
        self.stats: Counter[str] = Counter()
        self._peak = 0  # persons_tracked_peak, mirrored so each event skips a Counter lookup
        # Where round reports go when more than SPILL_ROWS rows wait for the next drain: it
        # takes them from the list it is given (replay writes them). None: all wait.
        self.spill: Callable[[list[RoundReport]], None] | None = None
        self._held_rows = 0
        # actions kept for an alert not raised yet: (time, key, alert_id, action, stage runs)
        self._held: list[tuple[int, str, str, str, tuple[_StageRun[Any], ...]]] = []

    # -- inputs -----------------------------------------------------------------------------

    def pipe(self, topic: str, value: Any, raw: bytes, origin: Origin) -> None:
        """Validate, de-duplicate and apply one input; then fire what the clock reached."""
        self.stats["events_read"] += 1
        decoded = validate_event(topic, value, self.policy.cohorts, received_at=self.received_at,
                                 max_clock_skew=self.policy.max_clock_skew)
        if isinstance(decoded, Rejection):
            self.reject(decoded, raw, origin, topic)
            return
        self._guarded(topic, decoded, raw, origin)

    def pipe_line(self, line: bytes, origin: Origin) -> None:
        """One replay line ``{"topic": …, "value": …}``: the fast path of ``replay``."""
        self.stats["events_read"] += 1
        decoded = decode_line(line, self.policy.cohorts, received_at=self.received_at,
                              max_clock_skew=self.policy.max_clock_skew)
        if isinstance(decoded, Rejection):
            self.reject(decoded, line, origin, None)
            return
        topic, event = decoded
        if isinstance(event, Rejection):
            self.reject(event, line, origin, topic)
            return
        try:  # _guarded, inlined: a call less per line
            self.pipe_event(topic, event, line, origin)
        except Exception as exc:
            self._failed(exc, line, origin, topic)

    def _guarded(self, topic: str, event: Event, raw: bytes, origin: Origin) -> None:
        """``pipe_event``, but a line the engine fails on is dead-lettered (internal_error)
        and the run goes on: one line must never stop a replay."""
        try:
            self.pipe_event(topic, event, raw, origin)
        except Exception as exc:
            self._failed(exc, raw, origin, topic)

    def _failed(self, exc: Exception, raw: bytes, origin: Origin, topic: str) -> None:
        ctx = self._ctx  # what the failed line left to route must not carry over
        ctx.forwards, ctx.contributions, ctx.round_parts = [], [], []
        self.reject(Rejection("internal_error", f"the engine failed on this line "
                              f"({type(exc).__name__}); it was skipped"), raw, origin, topic)

    def pipe_event(self, topic: str, event: Event, raw: bytes, origin: Origin,
                   clocked: bool = True) -> None:
        """Apply one decoded input; ``clocked`` False: its time does not move the clock (an
        action recorded in the ledger, fed to a replay at its effective instant)."""
        at = epoch_seconds(event.occurred_at)
        if self.dedup.seen(topic, event.event_id, at, self.clock.value):
            self.stats["duplicates_ignored"] += 1
            return
        ctx = self._ctx
        ctx.clock = self.clock.observe(at) if clocked else self.clock.value
        ctx.event, ctx.event_at = event, at  # the agents need not convert the time again
        # interned: a person's id is kept once, shared with the tubes' members, and a
        # tube's with its persons' samples
        key = intern(getattr(event, KEY_FIELD[topic]))
        runs = self._topic_runs[topic]
        if not runs and isinstance(event, Area | Round) and apply_shared(
                self.policy, self.shared, event, self.person.table):
            self._rounds_due = rounds.next_due(self.policy, self.shared)
        applied = True
        for run in runs:
            rejection = run.apply(ctx, key, event)
            if rejection is not None:  # a rule refused it (a pool overflow): not applied
                self.reject(rejection, raw, origin, topic)
                applied = False
        if isinstance(event, Action):
            self.out.actions.append(event)
            self._count_action(key, event, runs)
        if applied:  # so that read = applied + duplicates + rejected
            self.stats[_APPLIED[topic]] += 1
        if ctx.forwards or ctx.contributions:  # _route's test, without a call when empty
            self._route(ctx)
        clock = ctx.clock  # _advance's tests, without a call when nothing is due:
        if (min(self.tube.index.earliest, self.person.index.earliest,
                self.report.index.earliest) <= clock
                or (self._rounds_due is not None and self._rounds_due <= clock)):
            self._advance(ctx)
        tracked = len(self.person.table)
        if tracked > self._peak:
            self._peak = self.stats["persons_tracked_peak"] = tracked

    def _count_action(self, key: str, event: Action, runs: tuple[_StageRun[Any], ...]) -> None:
        """An action applied (by kind), ignored (by reason: counted, never rejected), or
        kept for the alert its subject is about to raise (settled later)."""
        states = [run.table.get(key) for run in runs]
        ignored = action_outcome(states, event.alert_id, epoch_seconds(event.occurred_at),
                                 self.policy.escalate_after)
        if event.action == "assign" and ignored == "escalation_over":
            ignored = None  # an assignment changes no escalation: an ended one is no reason
        if ignored is not None:
            self.stats[f"actions_ignored:{ignored}"] += 1
        elif any(isinstance(st, Keyed) and st.esc is not None and event.alert_id in st.esc
                 for st in states) or event.action == "assign":
            self.stats[f"actions_applied:{event.action}"] += 1
        else:
            self._held.append((epoch_seconds(event.occurred_at), key, event.alert_id,
                               event.action, runs))

    @property
    def keyed_steps(self) -> int:
        """Keyed applies and fires so far, over the three stages."""
        return self.tube.steps + self.person.steps + self.report.steps

    def reject(self, rejection: Rejection, raw: bytes, origin: Origin, topic: str | None) -> None:
        self.stats[f"rejected:{rejection.reason}"] += 1
        self.out.dead_letters.append(
            dead_letter(
                rejection, raw, topic=origin.topic or topic, partition=origin.partition,
                offset=origin.offset, line=origin.line,
            )
        )

    def advance_to(self, instant: int) -> None:
        """Move the clock to ``instant`` (``--until``) and fire everything due by then."""
        ctx = self._ctx
        ctx.clock = self.clock.advance_to(instant)
        self._advance(ctx)

    # -- outputs ----------------------------------------------------------------------------

    def settle_actions(self, final: bool = True) -> None:
        """Count what became of the actions kept for an alert their subject had not raised
        when they were read: applied when it raised it since (and took the action over),
        else ignored (their subject is not the alert's). Settled once the clock is past
        their time by ``escalation.after`` (an alert due by then has been raised), and all of
        them at the end of a run (``final``)."""
        still = []
        for item in self._held:
            at, key, alert_id, action, runs = item
            if not final and self.clock.value <= at + self.policy.escalate_after:
                still.append(item)
                continue
            states = [run.table.get(key) for run in runs]
            taken = any(isinstance(st, Keyed) and not (st.acts and alert_id in st.acts)
                        and ((st.esc is not None and alert_id in st.esc)
                             or (st.sent is not None and alert_id in st.sent))
                        for st in states)
            self.stats[f"actions_applied:{action}" if taken
                       else "actions_ignored:not_subjects_alert"] += 1
        self._held = still

    def drain(self) -> Outputs:
        """Hand over what was produced since the last drain."""
        if self._held:
            self.settle_actions(final=False)
        out, self.out = self.out, Outputs()
        self._ctx = self._context()
        self._held_rows = 0
        return out

    # -- wiring -----------------------------------------------------------------------------

    def _context(self) -> Context:
        """The rules' context filling ``self.out``: one object per drain, not per event
        (building a 12-field dataclass was a measurable share of each event); each event
        only sets its clock."""
        out = self.out
        return Context(self.policy, self.cal, self.clock.value, out.alerts, [], [],
                       out.reports, out.escalations, shared=self.shared,
                       round_reports=out.round_reports)

    def _route(self, ctx: Context) -> None:
        """Deliver forwards to the person stage and contributions to the report stage."""
        while ctx.forwards:
            forwards, ctx.forwards = ctx.forwards, []
            apply = self.person.apply
            for person_id, message in forwards:
                apply(ctx, person_id, message)
        if ctx.contributions:  # most inputs contribute nothing: no new list for them
            contributions, ctx.contributions = ctx.contributions, []
            for item in contributions:
                self.report.apply(ctx, item.district, item, fire=False)

    def _fire_rounds(self, ctx: Context) -> None:
        table = self.person.table

        def made() -> None:  # one partition: each share is a report
            parts, ctx.round_parts = ctx.round_parts, []
            reports = [rounds.report(self.cal, [part]) for part in parts]
            ctx.round_reports.extend(reports)
            self._held_rows += sum(len(report.rows) or 1 for report in reports)
            if self.spill is not None and self._held_rows >= SPILL_ROWS:
                self.spill(ctx.round_reports)
                self._held_rows = 0

        for person_id in sorted(rounds.fire_rounds(ctx, self.shared, table, made)):
            st = table.get(person_id)
            if st is not None:  # an alert raised there opened its escalation
                self.person.index.schedule(person_id, next_due(st))
        self._rounds_due = rounds.next_due(self.policy, self.shared)

    def _advance(self, ctx: Context) -> None:
        """Fire every stage's due keys, upstream first, so downstream sees their outputs.

        Rounds first: a round's report as of an instant reads person states, which the
        person stage's ``gc`` may thin out when the same clock passes its due instant."""
        if self._rounds_due is not None and self._rounds_due <= ctx.clock:
            self._fire_rounds(ctx)
        clock = ctx.clock
        for run in self._upstream_first:
            if run.index.earliest <= clock:  # has_due, without a call per stage and event
                for key in run.index.pop_due(clock):
                    run.fire(ctx, key)
                    if ctx.forwards or ctx.contributions:
                        self._route(ctx)
