"""Replay's runtime: the worker's stage runners on a one-partition bus fed by one input log.

Like Kafka Streams' TopologyTestDriver, the topology of the worker run in-process: the very
:class:`~closedloop.streams.engine.stage_runner.StageRunner` of each stage of
:data:`~closedloop.streams.engine.topology.TOPOLOGY`, on one partition, with its
de-duplication, its deadline index and its rounds. Inputs are applied in file order; what a
stage makes for another (forwards, contributions, round shares) is handed to it at once, as
typed items rather than encoded records; after every input the stages fire what is due,
upstream first, so a downstream stage sees what its upstream made before it passes the same
instant. A replay file is one input log holding every topic in the order written, so its
watermark is every stage's clock (``docs/RULES.md``, "Clocks"): one clock and one context
serve the runners. ``replay``, ``demo``, the tests and the benchmarks run through it:
``pipe_line``/``pipe(topic, value)``, ``advance_to(T)``, ``drain()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from sys import intern
from typing import Any, Final

import msgspec

from closedloop.agents.calendar import Calendar
from closedloop.agents.closure import rejected_contribution
from closedloop.agents.combine import NEVER, EntryCombiner, LabParts
from closedloop.agents.effects import Effects
from closedloop.agents.entry import EntryState, source_of
from closedloop.agents.escalation import action_outcome
from closedloop.agents.requirements import Context
from closedloop.agents.round_sum import round_key
from closedloop.agents.shared import Shared
from closedloop.agents.sources import Entered, rejected_part
from closedloop.agents.state import Contribution, Keyed, PersonState, RoundPart, Sampled
from closedloop.schemas.decode import (
    Rejection,
    dead_letter,
    decode_line,
    envelope_receipt,
    validate_event,
)
from closedloop.schemas.events import KEY_FIELD, Action, Area, Event, Round
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.outputs import DeadLetter, RoundReport
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import MIN_EPOCH, Watermark
from closedloop.streams.engine.dedup import Dedup
from closedloop.streams.engine.envelopes import Publishable, publishable
from closedloop.streams.engine.stage_runner import AnyRunner, runners
from closedloop.streams.engine.topology import TOPOLOGY

__all__ = ["EmbeddedDriver", "Origin", "Outputs"]

RAW_IDENTIFIER: Final = "raw_identifier"
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
class Outputs(Effects):
    """What the rules made since the last drain (the runners' context writes into it; the
    items for other stages are handed on at once), and what replay adds of its own."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)  # accepted, for the ledger's lifecycle


class EmbeddedDriver:
    """The stage runners of the topology on one partition, fed one input log."""

    def __init__(self, policy: Policy, received_at: float | None = None) -> None:
        """``received_at``: when the inputs were received (epoch seconds), for the
        implausible-time rule; None leaves its upper bound unchecked."""
        self.policy = policy
        self.received_at = received_at
        self.cal = Calendar(policy.zone, policy.daily_cutoff)
        self.clock = Watermark(policy.allowed_lateness)  # the input log's watermark
        self.shared = Shared()
        self.tables: dict[str, dict[str, Any]] = {}
        self.runners: dict[str, AnyRunner] = runners(
            policy, 1, lambda stage, _state: self.tables.setdefault(stage, {}), one_log=True)
        self._upstream_first = tuple(self.runners.values())
        self._indexes = tuple(run.index(0) for run in self._upstream_first)
        # each input topic's stages, its de-duplicating owner, and each item type's receiver
        self._topic_runs = {topic: tuple(self.runners[stage.name] for stage in stages)
                            for topic, stages in TOPOLOGY.appliers.items()}
        self._topic_applies = {topic: tuple(run.applier(0) for run in runs)
                               for topic, runs in self._topic_runs.items()}
        # an input of the contract no stage reads yet is still de-duplicated and counted,
        # so that the summary adds up (read = applied + duplicates + rejected)
        unread = Dedup(policy.dedup_retention)
        self._dedup = {topic: self.runners[TOPOLOGY.owner[topic]].dedup(0)
                       if topic in TOPOLOGY.owner else unread for topic in TOPOLOGY.inputs}
        self._holder = next(run for run in self._upstream_first if run.rounds)
        self._holder.after_round_instant = self._round_instant
        self.persons: dict[str, PersonState] = self.tables[self._holder.stage.name]
        receiver = {topic: self.runners[TOPOLOGY.readers[topic][0]]
                    for topic in TOPOLOGY.internal}
        self._forwards_to = receiver[TOPOLOGY.route[Sampled]].applier(0)
        self._counts_to = receiver[TOPOLOGY.route[Contribution]].applier(0)
        self._shares_to = receiver[TOPOLOGY.route[RoundPart]].applier(0)
        self._entries_to = receiver[TOPOLOGY.route[Entered]].applier(0)
        # the data-entry stage's own applier of the inputs it reads (actions)
        entry_run = receiver[TOPOLOGY.route[Entered]]
        self._entry_reads = {topic: next((apply for run, apply in zip(
            self._topic_runs[topic], self._topic_applies[topic], strict=True)
            if run is entry_run), None) for topic in self._topic_runs}
        entry_table = receiver[TOPOLOGY.route[Entered]].table

        def judged(key: str) -> int | None:
            st = entry_table.get(key)
            days = st.days if isinstance(st, EntryState) else None
            return None if days is None else days.judged

        # a run's data-entry parts, combined per key and day before they are applied
        self._combined = EntryCombiner(policy, self.cal, judged)
        def reports_of(lab_id: str) -> list[int] | None:
            st = entry_table.get(lab_id)
            lab = st.lab if isinstance(st, EntryState) else None
            return None if lab is None else lab.reports

        # what tubes tell their labs, one part per lab until the lab must see them
        self._labs = LabParts(policy, reports_of)
        self.out = Outputs()  # replaced by drain() only
        # the rules' context, shared by the runners: one object, not one per event (each
        # step only sets its clock); its ``out`` is self.out
        self._ctx = Context(policy, self.cal, self.clock.value, out=self.out,
                            shared=self.shared)
        for run in self._upstream_first:
            run.adopt(0, self.clock, self.shared, self._ctx)
        self._clock_at = _ClockAt(self._ctx)
        self.stats: Counter[str] = Counter()
        self._peak = 0  # persons_tracked_peak, mirrored so each event skips a Counter lookup
        # Where round reports go when more than SPILL_ROWS rows wait for the next drain: it
        # takes them from the list it is given (replay writes them). None: all wait.
        self.spill: Callable[[list[RoundReport]], None] | None = None
        self._held_rows = 0
        # actions kept for an alert not raised yet: (time, key, alert_id, action, stage runs)
        self._held: list[tuple[int, str, str, str, tuple[AnyRunner, ...]]] = []
        self._reported = 0  # round reports of the current drain whose rows were counted
        # rejected values naming a district but no instant, read before the clock started
        self._rejected_held: Counter[str] = Counter()

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
                              max_clock_skew=self.policy.max_clock_skew, with_receipt=True)
        if isinstance(decoded, Rejection):
            self.reject(decoded, line, origin, None)
            return
        topic, event, receipt = decoded
        if isinstance(event, Rejection):
            self.reject(event, line, origin, topic, counted=_published(line))
            return
        try:  # _guarded, inlined: replay runs this once per line
            self.pipe_event(topic, event, line, origin,
                            receipt=None if receipt is None else epoch_seconds(receipt))
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
        out = self.out  # what the failed line left to route must not carry over
        out.forwards, out.contributions, out.round_parts, out.labs = [], [], [], []
        self.reject(Rejection("internal_error", f"the engine failed on this line "
                              f"({type(exc).__name__}); it was skipped"), raw, origin, topic,
                    counted=False)

    def pipe_event(self, topic: str, event: Event, raw: bytes, origin: Origin,
                   clocked: bool = True, receipt: int | None = None) -> None:
        """Apply one decoded input; ``clocked`` False: its time does not move the clock (an
        action recorded in the ledger, fed to a replay at its effective instant).
        ``receipt``: the line's own receipt (epoch seconds), None when its entry lag is
        unknown."""
        at = epoch_seconds(event.occurred_at)
        clock = self.clock
        if self._dedup[topic].seen(topic, event.event_id, at, clock.value):
            self.stats["duplicates_ignored"] += 1
            return
        fired = clock.value  # what the stages have fired through
        self._ctx.clock = clock.observe(at) if clocked else clock.value
        if self._rejected_held and clock.value != MIN_EPOCH:
            self._release_rejected()
        # interned: a person's id is kept once, shared with the tubes' members, and a
        # tube's with its persons' samples
        key = intern(getattr(event, KEY_FIELD[topic]))
        applies = self._topic_applies[topic]
        if not applies and isinstance(event, Area | Round):
            self._holder.share(0, event)
        applied = True
        if type(event) is Action:  # the entry stage reads actions too
            if self._combined:
                self._apply_combined()
            if key in self._labs:
                with self._clock_at(fired):
                    self._entries_to(key, self._labs.pop(key), None)
        entry_reads = self._entry_reads[topic]  # None but for actions
        for apply in applies:
            if apply is entry_reads:
                with self._clock_at(fired):
                    rejection = apply(key, event, at)
            else:
                rejection = apply(key, event, at)
            if rejection is not None:  # a rule refused it (a pool overflow): not applied
                self.reject(rejection, raw, origin, topic)
                applied = False
        if isinstance(event, Action):
            self.out.actions.append(event)
            self._count_action(key, event, self._topic_runs[topic])
        if applied:  # so that read = applied + duplicates + rejected
            self.stats[_APPLIED[topic]] += 1
            if receipt is not None:  # most lines send the stage nothing
                self._entered(topic, event, at, receipt)
        out = self.out  # _settle, without a call for the many events that make nothing due
        if out.forwards or out.contributions or out.round_parts or out.labs:
            self._route(out)
        tube, person, unit, entry, report = self._indexes
        if min(tube.earliest, person.earliest, unit.earliest, entry.earliest,
               report.earliest, self._combined.due, self._labs.due) <= self._ctx.clock:
            self._settle()
        tracked = len(self.persons)
        if tracked > self._peak:
            self._peak = self.stats["persons_tracked_peak"] = tracked

    def _entered(self, topic: str, event: Event, at: int, receipt: int | None) -> None:
        """What a line of known lag sends the data-entry stage and its district's report, as
        the worker's record intake sends them (agents/sources.py ``routes``), combined with
        the run's others (agents/combine.py); its entry lag in the summary."""
        if receipt is not None:
            self.stats["entries_known_lag"] += 1
            combined = self._combined
            if combined.record(topic, source_of(event), getattr(event, "district", None),
                               receipt, at, self._ctx.clock):
                self.stats["entries_late"] += 1
            if combined.overdue:
                for district, lags in combined.overdue:
                    self._counts_to(district, lags, None)
                combined.overdue.clear()

    def _count_action(self, key: str, event: Action, runs: tuple[AnyRunner, ...]) -> None:
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
        """Keyed applies and fires so far, over the stages."""
        return sum(run.steps for run in self._upstream_first)

    def reject(self, rejection: Rejection, raw: bytes, origin: Origin, topic: str | None,
               *, counted: bool = True) -> None:
        """Dead-letter an input; ``counted``: it counts in its district's report when it names
        a valid one (an input the engine failed on does not: the worker's cannot either; nor
        does a line without a known topic or one holding a raw identifier, which never reach
        a topic; nor one read before the clock started)."""
        self.stats[f"rejected:{rejection.reason}"] += 1
        if counted and rejection.reason != RAW_IDENTIFIER and (origin.topic or topic):
            self._count_rejected(origin.topic or topic,
                                 _rejected_value(raw, origin.line is not None))
        self.out.dead_letters.append(
            dead_letter(
                rejection, raw, topic=origin.topic or topic, partition=origin.partition,
                offset=origin.offset, line=origin.line,
            )
        )

    def _count_rejected(self, topic: str | None, value: object) -> None:
        """A rejected value naming a valid district counts in its report: at its own
        occurred_at when it has a plausible one, else one second after the clock, held
        until the clock has started (agents/sources.py ``rejected_part``), as the worker's
        intake partitions count theirs."""
        found = rejected_part(self.policy, topic, value, self.received_at)
        if found is None:
            return
        district, at = found
        if at is None:
            if self.clock.value == MIN_EPOCH:
                self._rejected_held[district] += 1
                return
            at = self.clock.value + 1
        self._counts_to(district, rejected_contribution(district, at), None)

    def _release_rejected(self) -> None:
        """The clock has started: the rejected values held until then count after it."""
        held, self._rejected_held = self._rejected_held, Counter()
        for district, count in sorted(held.items()):
            self._counts_to(district, rejected_contribution(district, self.clock.value + 1,
                                                            count), None)

    def advance_to(self, instant: int) -> None:
        """Move the clock to ``instant`` (``--until``) and fire everything due by then."""
        self._ctx.clock = self.clock.advance_to(instant)
        if self._rejected_held and self.clock.value != MIN_EPOCH:
            self._release_rejected()
        self._settle()

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
        """Hand over what was produced since the last drain (the state then holds every
        line read)."""
        if self._combined:
            self._apply_combined()
        if self._labs:
            self._apply_labs()
        if self._held:
            self.settle_actions(final=False)
        out, self.out = self.out, Outputs()
        self._ctx.out = self.out
        if out.counted:  # what the rules counted, for the summary
            self.stats.update(out.counted)
        self._held_rows = self._reported = 0
        return out

    # -- wiring -----------------------------------------------------------------------------

    def _settle(self) -> None:
        """Hand on what the step made, then let each stage fire what the clock reached,
        upstream first, handing on what each fire made before the next stage's turn."""
        out = self.out
        if out.forwards or out.contributions or out.round_parts or out.labs:
            self._route(out)
        clock = self.clock.value
        tube, person, unit, entry, report = self._indexes
        combined, labs = self._combined, self._labs
        if min(tube.earliest, person.earliest, unit.earliest, entry.earliest,
               report.earliest, combined.due, labs.due) > clock:
            return  # most events make nothing due
        for run, index in zip(self._upstream_first, self._indexes, strict=True):
            # (a holder holding anything has a ``due`` before NEVER)
            if (index is entry or index is report) and combined.due != NEVER and (
                    index.earliest <= clock or combined.due <= clock):
                self._apply_combined()  # before either stage fires: it must see them
            if index is entry and labs.due != NEVER and (
                    index.earliest <= clock or labs.due <= clock):
                self._apply_labs()  # the tube stage has fired what the clock reached
            if index.earliest <= clock:
                run.fire(0)
                if out.forwards or out.contributions or out.round_parts or out.labs:
                    self._route(out)

    def _apply_combined(self) -> None:
        """Apply the data-entry parts combined so far: each key's day, each district's lags
        (agents/combine.py)."""
        days, lags = self._combined.take()
        for key, day in days:
            self._entries_to(key, day, None)
        for district, item in lags:
            self._counts_to(district, item, None)

    def _apply_labs(self) -> None:
        """Apply what the tubes told their labs, one step a lab (agents/combine.py)."""
        for lab_id, told in self._labs.take():
            self._entries_to(lab_id, told, None)

    def _route(self, out: Outputs) -> None:
        """Deliver forwards, contributions and round shares to the stages they are for."""
        while out.forwards:
            forwards, out.forwards = out.forwards, []
            apply = self._forwards_to
            for person_id, message in forwards:
                apply(person_id, message, None)
        if out.contributions:  # most inputs contribute nothing: no new list for them
            contributions, out.contributions = out.contributions, []
            apply = self._counts_to
            for item in contributions:
                apply(item.district, item, None)
        if out.round_parts:
            parts, out.round_parts = out.round_parts, []
            apply = self._shares_to
            for share in parts:
                apply(round_key(share.round_id), share, None)
        if out.labs:
            # held, and applied once the tube stage has fired what the clock reached: a lab
            # reads its tubes' waits begun by its clock before it judges that clock
            # (agents/lab_waits.py)
            labs, out.labs = out.labs, []
            hold = self._labs.add
            for lab_id, told in labs:
                hold(lab_id, told)

    def _round_instant(self) -> None:
        """An instant's round shares are made: reported at once (one partition: each share
        is a report), and handed over when more than SPILL_ROWS rows wait."""
        out = self.out
        if out.round_parts:
            self._route(out)
        reports = out.round_reports
        self._held_rows += sum(len(report.rows) or 1 for report in reports[self._reported:])
        self._reported = len(reports)
        if self.spill is not None and self._held_rows >= SPILL_ROWS:
            self.spill(reports)
            self._held_rows = self._reported = 0



class _ClockAt:
    """``with clock_at(instant):`` the rules' context reads at ``instant``, and at its own
    clock again after. What the data-entry stage is handed in a step (an action, a lab's
    held parts before it) is read at what its upstream has fired through, as the worker's
    stage reads by its clock marks: a lab knows every tube's wait begun by its clock
    (agents/lab_waits.py), and the tube stage fires this step's later."""

    __slots__ = ("_at", "_ctx", "_own")

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._at = self._own = ctx.clock

    def __call__(self, instant: int) -> _ClockAt:
        self._at = instant
        return self

    def __enter__(self) -> None:
        self._own, self._ctx.clock = self._ctx.clock, self._at

    def __exit__(self, *exc: object) -> None:
        self._ctx.clock = self._own


def _published(line: bytes) -> bool:
    """Would ``closedloop produce`` send this line to its topic? A line it refuses (a
    compacted topic's record without its key, a received_at that is no instant) never
    reaches a worker, which counts it in no report: nor does replay."""
    return (isinstance(publishable(line), Publishable)
            and not isinstance(envelope_receipt(line), Rejection))


def _rejected_value(raw: bytes, line: bool) -> object:
    """A rejected input's value as parsed JSON, for the district it counts in: a replay
    line's envelope ``value`` (``line``), else the record itself; None when not JSON."""
    try:
        parsed = msgspec.json.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
    return parsed.get("value") if line and isinstance(parsed, dict) else parsed
