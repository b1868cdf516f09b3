"""Everything the ledger knows about one subject (a person, a tube, a site, a lab…), in time
order: its alerts, the operators' actions on them, their escalations, their status changes
and its rejected records.

::

    from closedloop.streams.app import timeline
    for entry in timeline.timeline(connection, caller, "p:eb47c6aa74c0"):
        entry.at, entry.what, entry.alert_id, entry.text, entry.facts

    with engine.begin() as connection:        # a person's timeline shown to someone:
        entries = timeline.view(connection, caller, subject, via="console")   # audited

``what`` is one of :data:`WHATS`; ``text`` is one line in English, ``facts`` the same as
values (kind, level, action, operator, reason, …) for a front end that words it in another
language. :func:`view` is the call for showing a timeline to someone: it records who viewed
which subject, when and from where (``timeline_view``), as personal-information law
expects.

What the ledger can honestly show of status changes: an alert's raising, the actions
applied (acknowledged, resolved, assigned: from the audit, which also shows the actions
ignored and why), the system closing a round_missed alert when the person was caught up,
and each escalation level. A person's own state (regimen, tests) is kept as its latest value
only, so its history is not shown. Rejected records (dead letters) are shown by reason and
where they came from, never their content, and only to city-level callers (a rejected record
has no trusted district).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.agents.actions import REASONS
from closedloop.streams.app.alerts import AlertFilter, list_alerts
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import queries, store

__all__ = ["WHATS", "Entry", "timeline", "view"]

WHATS: Final = ("alert", "action", "action_ignored", "escalation", "caught_up", "rejected")

_DONE: Final = {"ack": "acknowledged", "resolve": "resolved", "assign": "assigned"}


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    what: str  # one of WHATS
    alert_id: str | None
    text: str  # one line for people
    facts: Mapping[str, Any] = field(default_factory=dict)


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
                             f"district {alert['district'] or '-'})",
                             {"kind": alert["kind"], "due_at": alert["due_at"],
                              "district": alert["district"]}))
        if alert["caught_up_at"] is not None:
            entries.append(Entry(alert["caught_up_at"], "caught_up", alert["alert_id"],
                                 f"{alert['kind']} closed by the system: caught up "
                                 "(sampled within the catch-up window)",
                                 {"kind": alert["kind"]}))
    for level in queries.escalation_levels(connection, ids):
        entries.append(Entry(level["escalated_at"], "escalation", level["alert_id"],
                             f"escalated to level {level['level']}"
                             + (" (city command)" if level["level"] >= 3
                                else " (district command)"), {"level": level["level"]}))
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
        facts = {"action": action["action"], "operator": action["operator_id"],
                 "assignee": action["assignee"], "note": action["note"], "via": action["via"],
                 "effective_at": None if action["effective_at"] == action["acted_at"]
                 else action["effective_at"], "reason": action["reason"]}
        if action["outcome"] == "applied":
            entries.append(Entry(action["acted_at"], "action", action["alert_id"],
                                 f"{_DONE.get(action['action'], action['action'])} {who}{via}"
                                 f"{note}", facts))
        else:
            reason = REASONS.get(action["reason"] or "", action["reason"] or "")
            entries.append(Entry(action["acted_at"], "action_ignored", action["alert_id"],
                                 f"{action['action']} {who}{via} ignored: {reason}", facts))
    if caller.city_level:
        for letter in queries.dead_letters_of(connection, subject):
            where = (f"line {letter['line']}" if letter["line"] is not None
                     else f"{letter['topic']}[{letter['partition']}]@{letter['offset']}")
            entries.append(Entry(letter["received_at"], "rejected", None,
                                 f"a {letter['topic'] or 'record'} record rejected "
                                 f"({letter['reason']}) at {where}: {letter['message']}",
                                 {"topic": letter["topic"], "reason": letter["reason"],
                                  "line": letter["line"], "partition": letter["partition"],
                                  "offset": letter["offset"], "message": letter["message"]}))
    order = {what: rank for rank, what in enumerate(WHATS)}
    entries.sort(key=lambda e: (e.at, order[e.what]))
    return entries


def view(connection: Connection, caller: Caller, subject: str, zone: tzinfo = UTC, *,
         via: str, at: datetime | None = None) -> list[Entry]:
    """The subject's timeline as :func:`timeline` reads it, shown to ``caller``: the view is
    recorded (who, when, which subject, ``via`` where from, how many entries it showed),
    whether or not the ledger holds anything about the subject for this caller. Call it in
    a transaction (``engine.begin()``); the record is written with the read."""
    entries = timeline(connection, caller, subject, zone)
    store.record_timeline_view(connection, operator_id=caller.operator_id, subject=subject,
                               viewed_at=at or datetime.now(UTC), via=via,
                               entries=len(entries))
    return entries
