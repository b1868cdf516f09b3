"""The ledger as ``replay --ledger`` and ``demo`` fill it: in-process, without Kafka.

The embedded driver hands over alerts, escalations, daily and round reports, dead letters and
the operator actions it accepted at each flush; they go through the same ``store`` functions
the Kafka sink uses, in the sink's order (an action after the alerts beside it), so a
replayed ledger and a streamed one hold the same rows and the same lifecycle: an ``action``
line leaves its alert acknowledged or resolved, an escalation its level. Person states are
written once, at the end, from the driver's table: the final view a compacted
``person-status`` topic converges to.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from closedloop.agents.person import person_status
from closedloop.agents.requirements import Context
from closedloop.schemas.events import Action
from closedloop.streams.engine.embedded import EmbeddedDriver, Outputs
from closedloop.streams.ledger import store
from closedloop.streams.ledger.engine import open_engine
from closedloop.streams.ledger.migrate import ensure_schema

__all__ = ["ReplayLedger", "open_for_command"]


class ReplayLedger:
    """Receives a replay's outputs flush by flush; one transaction per flush."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.alerts_new = 0
        self.actions_applied = 0
        # Actions that changed no row, tried again at the end: their alert may be raised in a
        # later flush (the action's own time moves the clock only to it less the lateness).
        self.unapplied: list[Action] = []

    @classmethod
    def open(cls, url: str) -> ReplayLedger:
        """The ledger at ``url``, its schema checked (an embedded SQLite file is upgraded)."""
        engine = open_engine(url)
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def write(self, out: Outputs) -> None:
        with self.engine.begin() as connection:
            self.alerts_new += store.add_alerts(connection, out.alerts)
            store.note_escalations(connection, out.escalations)
            store.upsert_reports(connection, out.reports)
            store.upsert_round_reports(connection, out.round_reports)
            store.add_dead_letters(connection, out.dead_letters, datetime.now(UTC))
            self._apply(connection, out.actions)

    def _apply(self, connection: Connection, actions: list[Action]) -> None:
        for action in actions:
            if store.apply_action(connection, action.alert_id, action.action,
                                  action.operator_id, action.occurred_at, action.note,
                                  action.assignee):
                self.actions_applied += 1
            else:
                self.unapplied.append(action)

    def finish(self, driver: EmbeddedDriver) -> None:
        """Write every person the engine still holds, as of the final clock."""
        ctx = Context(driver.policy, driver.cal, driver.clock.value)
        statuses = {
            person_id: person_status(ctx, person_id, state)
            for person_id, state in driver.person.table.items()
        }
        retry, self.unapplied = self.unapplied, []
        with self.engine.begin() as connection:
            store.put_person_states(connection, statuses)
            self._apply(connection, retry)

    def close(self) -> None:
        self.engine.dispose()


def open_for_command(url: str, command: str) -> ReplayLedger | None:
    """The ledger for a command's ``--ledger URL``, or None after saying on stderr why not."""
    from closedloop.streams.ledger.errors import ledger_error

    try:
        return ReplayLedger.open(url)
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        print(f"closedloop {command}: {message}", file=sys.stderr)
        return None
