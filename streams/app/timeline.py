"""Everything the ledger knows about one subject (a person, a tube, a site, a lab, a
supervised unit…), in time order: its alerts, the operators' actions on them, their
escalations, their status changes, its rejected records, and a unit's supervision findings
with their rectifications and rechecks.

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
has no trusted district). A unit's findings, rectifications and rechecks (contract v1.2)
are shown at their occurred_at, from the engine's latest ``unit-status`` of the unit; a caller
limited to districts sees the findings of its districts only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.agents.actions import REASONS
from closedloop.streams.app.alerts import AlertFilter, list_alerts
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger import queries, store

__all__ = ["WHATS", "Entry", "timeline", "view"]

WHATS: Final = ("finding", "rectified", "recheck", "alert", "action", "action_ignored",
                 "escalation", "caught_up", "rejected")
"""At one instant a finding comes before its rectification and a rectification before a
recheck (as the rules order them), and all three before an alert they raise then."""

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
    entries += _findings(connection, caller, subject, shown)
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


def _findings(connection: Connection, caller: Caller, unit_id: str,
              shown: Callable[[datetime], str]) -> list[Entry]:
    """A unit's findings, each with its rectifications and rechecks as stored."""
    entries: list[Entry] = []
    for row in queries.findings_of(connection, unit_id, caller.districts):
        finding_id = row["finding_id"]
        facts = {"finding_id": finding_id, "category": row["category"],
                 "severity": row["severity"], "unit_kind": row["unit_kind"],
                 "district": row["district"], "state": row["state"]}
        state = ("open" if row["closed_at"] is None
                 else f"closed by the recheck of {shown(row['closed_at'])}")
        entries.append(Entry(row["found_at"], "finding", None,
                             f"finding {finding_id}: {row['category']}, {row['severity']} "
                             f"({row['unit_kind']}, district {row['district']}); {state}",
                             facts))
        for step in row["steps"] or ():
            at = datetime.fromisoformat(step["at"]).astimezone(UTC)
            if step["record"] == "rectified":
                entries.append(Entry(at, "rectified", None,
                                     f"finding {finding_id} rectified",
                                     {"finding_id": finding_id}))
            else:
                entries.append(Entry(at, "recheck", None,
                                     f"finding {finding_id} rechecked: {step['result']}",
                                     {"finding_id": finding_id, "result": step["result"]}))
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
