"""The ledger as ``replay --ledger`` and ``demo`` fill it: in-process, without Kafka.

The embedded driver hands over alerts, escalations, daily and round reports, dead letters and
the operator actions it accepted at each flush; they go through the same ``store`` functions
the Kafka sink uses, in the sink's order (an action after the alerts beside it), so a
replayed ledger and a streamed one hold the same rows and the same lifecycle: an ``action``
line leaves its alert acknowledged or resolved (or is audited as ignored), an escalation its
level. Person states are written once, at the end, from the driver's table: the final view a
compacted ``person-status`` topic converges to; then round_missed alerts of persons caught up
are closed, and the run is recorded with its final clock (the ledger's clock).

In the embedded deployment the ledger is the system of record: :meth:`own_actions` gives the
actions operators recorded in it, which ``replay --ledger`` feeds back to the engine.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from closedloop.agents.person import person_status
from closedloop.agents.requirements import Context
from closedloop.agents.units import UnitKey, unit_status
from closedloop.schemas.events import Action
from closedloop.streams.engine.clock import MIN_EPOCH
from closedloop.streams.engine.embedded import EmbeddedDriver, Outputs
from closedloop.streams.engine.topology import SUPERVISION
from closedloop.streams.ledger import queries, store
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import ensure_schema

__all__ = ["ReplayLedger", "open_for_command"]


class ReplayLedger:
    """Receives a replay's outputs flush by flush; one transaction per flush."""

    def __init__(self, engine: Engine, command: str = "replay") -> None:
        self.engine = engine
        self.command = command
        self.started_at = datetime.now(UTC)
        self.alerts_new = 0
        self.actions: Counter[str] = Counter()  # the input's actions: applied, or why not
        # Actions whose alert is not in the ledger yet, tried again at the end: it may be
        # raised in a later flush (the action's own time moves the clock only to it less the
        # lateness).
        self.unapplied: list[store.ActionRecord] = []

    @classmethod
    def open(cls, url: str, command: str = "replay") -> ReplayLedger:
        """The ledger at ``url``, its schema checked (an embedded SQLite file is upgraded)."""
        engine = open_engine(url)
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, command)

    def own_actions(self) -> list[tuple[int, Action]]:
        """The actions operators recorded in this ledger (not those of the action topic or a
        replayed file, which are inputs already), as action events at their effective
        instant, for the engine: so an alert acknowledged or resolved in the ledger escalates
        no further in later runs. Only ack and resolve (assign changes no escalation), only
        those applied."""
        with self.engine.connect() as connection:
            rows = queries.ledger_actions(connection)
        return [(int(row["effective_at"].timestamp()), Action(
            event_id=row["event_id"], occurred_at=row["effective_at"],
            alert_id=row["alert_id"], subject=row["subject"], action=row["action"],
            operator_id=row["operator_id"], note=row["note"])) for row in rows]

    def write(self, out: Outputs) -> None:
        with self.engine.begin() as connection:
            self.alerts_new += store.add_alerts(connection, out.alerts)
            store.note_escalations(connection, out.escalations)
            store.upsert_reports(connection, out.reports)
            store.upsert_round_reports(connection, out.round_reports)
            store.add_dead_letters(connection, out.dead_letters, datetime.now(UTC))
            self._apply(connection,
                        [store.action_record(action, "replay") for action in out.actions],
                        record_unknown=False)

    def _apply(self, connection: Connection, actions: list[store.ActionRecord],
               record_unknown: bool) -> None:
        for action in actions:
            outcome, reason = store.apply_action(connection, action,
                                                 record_unknown=record_unknown)
            if outcome == "pending":
                self.unapplied.append(action)
            else:
                self.actions[outcome if reason is None else reason] += 1

    def finish(self, driver: EmbeddedDriver) -> None:
        """Write every person and supervised unit the engine still holds, as of the final
        clock; close the round_missed alerts of persons caught up; record the run and its
        clock."""
        ctx = Context(driver.policy, driver.cal, driver.clock.value)
        statuses = {
            person_id: person_status(ctx, person_id, state)
            for person_id, state in driver.persons.items()
        }
        held = driver.tables.get(SUPERVISION.name, {})
        units = [unit_status(ctx, unit_id, state) for unit_id, state in held.items()
                 if isinstance(state, UnitKey)]
        retry, self.unapplied = self.unapplied, []
        clock = driver.clock.value
        with self.engine.begin() as connection:
            store.put_person_states(connection, statuses)
            store.put_unit_statuses(connection, units)
            store.close_caught_up(connection, list(statuses), driver.policy.catchup_within)
            self._apply(connection, retry, record_unknown=True)
            store.record_run(
                connection, command=self.command, started_at=self.started_at,
                finished_at=datetime.now(UTC),
                clock=None if clock <= MIN_EPOCH else datetime.fromtimestamp(clock, UTC),
                events_read=driver.stats.get("events_read", 0),
                ledger_actions=driver.stats.get("ledger_actions", 0))

    def close(self) -> None:
        self.engine.dispose()


def open_for_command(url: str, command: str) -> ReplayLedger | None:
    """The ledger for a command's ``--ledger URL``, or None after saying on stderr why not."""
    from closedloop.streams.ledger.errors import ledger_error

    try:
        return ReplayLedger.open(url, command)
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        print(f"closedloop {command}: {message}", file=sys.stderr)
        return None
