"""Everything the ledger knows about one subject (a person, a tube, a site, a lab…), in time
order: its alerts, the operators' actions on them, their escalations, their status changes
and its rejected records.

::

    from closedloop.streams.app import timeline
    for entry in timeline.timeline(connection, caller, "p:eb47c6aa74c0"):
        entry.at, entry.what, entry.alert_id, entry.text

``what`` is one of :data:`WHATS`. What the ledger can honestly show of status changes: an
alert's raising, the actions applied (acknowledged, resolved, assigned: from the audit,
which also shows the actions ignored and why), the system closing a round_missed alert when
the person was caught up, and each escalation level. A person's own state (regimen, tests)
is kept as its latest value only, so its history is not shown. Rejected records (dead
letters) are shown by reason and where they came from, never their content, and only to
city-level callers (a rejected record has no trusted district).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final

from sqlalchemy import Connection

from closedloop.agents.actions import REASONS
from closedloop.streams.app.alerts import AlertFilter, list_alerts
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import queries

__all__ = ["WHATS", "Entry", "timeline"]

WHATS: Final = ("alert", "action", "action_ignored", "escalation", "caught_up", "rejected")

_DONE: Final = {"ack": "acknowledged", "resolve": "resolved", "assign": "assigned"}


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    what: str  # one of WHATS
    alert_id: str | None
    text: str  # one line for people


def timeline(connection: Connection, caller: Caller, subject: str, zone: tzinfo = UTC
             ) -> list[Entry]:
    """The subject's entries, oldest first (ties: in the order above); the instants in the
    texts are in ``zone``."""

    def shown(at: datetime) -> str:
        return at.astimezone(zone).isoformat(timespec="seconds")

    alerts = list_alerts(connection, caller, AlertFilter(subjects=(subject,))).rows
    ids = [alert["alert_id"] for alert in alerts]
    entries: list[Entry] = []
    for alert in alerts:
        entries.append(Entry(alert["raised_at"], "alert", alert["alert_id"],
                             f"{alert['kind']} raised (due {shown(alert['due_at'])}, "
                             f"district {alert['district'] or '-'})"))
        if alert["caught_up_at"] is not None:
            entries.append(Entry(alert["caught_up_at"], "caught_up", alert["alert_id"],
                                 f"{alert['kind']} closed by the system: caught up "
                                 "(sampled within the catch-up window)"))
    for level in queries.escalation_levels(connection, ids):
        entries.append(Entry(level["escalated_at"], "escalation", level["alert_id"],
                             f"escalated to level {level['level']}"
                             + (" (city command)" if level["level"] >= 3
                                else " (district command)")))
    # actions on the caller's alerts, and those naming this subject for an alert the caller
    # sees (an action on another district's alert is not shown)
    visible = set(ids)
    for action in queries.alert_actions(connection, ids, [subject] if caller.city_level
                                        else []):
        if not caller.city_level and action["alert_id"] not in visible:
            continue
        who = f"by {action['operator_id']}" + (
            f" to {action['assignee']}" if action["assignee"] else "")
        note = f": {action['note']}" if action["note"] else ""
        via = f" (via {action['via']})" if action["effective_at"] == action["acted_at"] else (
            f" (via {action['via']}; effective in the engine at "
            f"{shown(action['effective_at'])})")
        if action["outcome"] == "applied":
            entries.append(Entry(action["acted_at"], "action", action["alert_id"],
                                 f"{_DONE.get(action['action'], action['action'])} {who}{via}"
                                 f"{note}"))
        else:
            reason = REASONS.get(action["reason"] or "", action["reason"] or "")
            entries.append(Entry(action["acted_at"], "action_ignored", action["alert_id"],
                                 f"{action['action']} {who}{via} ignored: {reason}"))
    if caller.city_level:
        for letter in queries.dead_letters_of(connection, subject):
            where = (f"line {letter['line']}" if letter["line"] is not None
                     else f"{letter['topic']}[{letter['partition']}]@{letter['offset']}")
            entries.append(Entry(letter["received_at"], "rejected", None,
                                 f"a {letter['topic'] or 'record'} record rejected "
                                 f"({letter['reason']}) at {where}: {letter['message']}"))
    order = {what: rank for rank, what in enumerate(WHATS)}
    entries.sort(key=lambda e: (e.at, order[e.what]))
    return entries
