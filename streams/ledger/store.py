"""Writing the engine's outputs into the ledger, idempotently.

These functions are the only writers of engine output: the Kafka sink and ``replay --ledger``
both call them, so the two fill the same rows the same way. Each is safe to call again with
the same records (at-least-once delivery, a replay run twice): an alert is inserted once and
keeps its lifecycle, a report or person status is replaced by its latest version, a dead
letter is one row per origin. The caller owns the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import Connection, Table, and_, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from closedloop.agents.closure import ENTRY_COUNTS
from closedloop.schemas.ids import spell_digit_runs
from closedloop.schemas.outputs import Alert, DailyReport, DeadLetter, PersonStatus, RoundReport
from closedloop.streams.ledger import models

__all__ = [
    "add_alerts",
    "add_dead_letters",
    "apply_action",
    "dead_letter_origin",
    "note_escalations",
    "put_person_states",
    "upsert_reports",
    "upsert_round_reports",
]

V12_COLUMNS: Final = (
    "entries", "entries_late", "entry_lag_p90_minutes", "entries_rejected",
    "findings_new", "findings_open", "rectifications_overdue", "rechecks_failed",
    "repeat_offenders",
)
"""Contract v1.2's columns: data entry, then supervision (migration 0004)."""

REPORT_COUNTS: Final = (
    "pushed",
    "located",
    "under_control",
    "followup_overdue_open",
    "tests_missed",
    "positives",
    *ENTRY_COUNTS,
    *V12_COLUMNS,
)
"""The report's figures, as the ledger's columns: counts, and one percentile (v1.2)."""

ROUND_COUNTS: Final = (
    "in_scope", "sampled", "missed", "caught_up", "not_on_roster", "catchup_median_hours",
)

NO_ROWS: Final = ""
"""The district of a round report's marker row: a report with no district (nobody in scope,
nobody sampled off the roster) is stored as this one row of zeros, so the ledger can tell
"the round closed empty" from "the round is unknown". Readers drop it from the rows."""

_TABLES: Final = models.Base.metadata.tables
_ALERT: Final = _TABLES["alert"]
_REPORT: Final = _TABLES["daily_report"]
_PERSON: Final = _TABLES["person_state"]
_LETTER: Final = _TABLES["dead_letter"]
_ROUND: Final = _TABLES["round_report"]


def upsert_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite spell it alike)."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the ledger runs on PostgreSQL or SQLite, not {name}")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def add_alerts(connection: Connection, alerts: Iterable[Alert]) -> int:
    """Insert alerts not yet in the ledger; returns how many were new.

    An alert already there is left as it is: its lifecycle (acknowledged, resolved) belongs
    to the operators, and the engine never emits two different alerts with one id.
    """
    rows = [
        {
            "alert_id": alert.alert_id,
            "kind": alert.kind,
            "subject": alert.subject,
            "person_id": alert.person_id,
            "tube_id": alert.tube_id,
            "district": alert.district,
            "due_at": _instant(alert.due_at),
            "raised_at": _instant(alert.raised_at),
            "details": alert.details,
        }
        for alert in alerts
    ]
    if not rows:
        return 0
    statement = (
        upsert_insert(connection, _ALERT)
        .on_conflict_do_nothing(index_elements=["alert_id"])
        .returning(_ALERT.c.alert_id)
    )
    return len(connection.execute(statement, rows).all())


def upsert_reports(connection: Connection, reports: Iterable[DailyReport]) -> int:
    """Insert or replace daily reports by (district, date); returns how many were written."""
    latest: dict[tuple[str, date], dict[str, Any]] = {}
    for report in reports:  # one row per key: ON CONFLICT DO UPDATE may touch a row only once
        day = date.fromisoformat(report.date)
        latest[(report.district, day)] = {
            "district": report.district,
            "date": day,
            **{name: getattr(report, name) for name in REPORT_COUNTS},
        }
    if not latest:
        return 0
    statement = upsert_insert(connection, _REPORT)
    statement = statement.on_conflict_do_update(
        index_elements=["district", "date"],
        set_={name: statement.excluded[name] for name in REPORT_COUNTS},
    )
    connection.execute(statement, list(latest.values()))
    return len(latest)


def upsert_round_reports(connection: Connection, reports: Iterable[RoundReport]) -> int:
    """Insert or replace round reports by (round_id, stage, as_of); returns how many.

    A report is its set of district rows: one delivered again replaces every row it had
    (a district gone from it is deleted). A report without rows is kept as one marker row
    whose district is ``NO_ROWS`` (all counts 0), so it is still found.
    """
    latest: dict[tuple[str, str, datetime], RoundReport] = {}
    for report in reports:
        latest[(report.round_id, report.stage, _instant(report.as_of))] = report
    if not latest:
        return 0
    rows: list[dict[str, Any]] = []
    for (round_id, stage, as_of), report in latest.items():
        connection.execute(delete(_ROUND).where(
            _ROUND.c.round_id == round_id, _ROUND.c.stage == stage, _ROUND.c.as_of == as_of))
        key = {"round_id": round_id, "stage": stage, "as_of": as_of}
        rows.extend({**key, "district": row.district,
                     **{name: getattr(row, name) for name in ROUND_COUNTS}}
                    for row in report.rows)
        if not report.rows:
            rows.append({**key, "district": NO_ROWS,
                         **{name: 0 for name in ROUND_COUNTS}, "catchup_median_hours": None})
    connection.execute(_ROUND.insert(), rows)
    return len(latest)


def put_person_states(
    connection: Connection, statuses: Mapping[str, PersonStatus | None]
) -> tuple[int, int]:
    """Apply the latest status of each person: upsert a status, delete on a tombstone (None).

    A status older than the stored one (by ``updated_at``) does not replace it, so a late
    redelivery cannot move a person back in time. Returns (upserted, deleted).
    """
    gone = [person_id for person_id, status in statuses.items() if status is None]
    rows = [
        {
            "person_id": person_id,
            "district": status.district,
            "status": msgspec.to_builtins(status),
            "updated_at": _instant(status.updated_at),
        }
        for person_id, status in statuses.items()
        if status is not None
    ]
    if gone:
        connection.execute(delete(_PERSON).where(_PERSON.c.person_id.in_(gone)))
    if rows:
        statement = upsert_insert(connection, _PERSON)
        statement = statement.on_conflict_do_update(
            index_elements=["person_id"],
            set_={name: statement.excluded[name] for name in ("district", "status", "updated_at")},
            where=_PERSON.c.updated_at <= statement.excluded.updated_at,
        )
        connection.execute(statement, rows)
    return len(rows), len(gone)


def dead_letter_origin(letter: DeadLetter) -> str:
    """Where a rejected input came from, as one string that is the same on every delivery.

    A Kafka input is named by its position. A file line is named by its number and a digest
    of its redacted copy, so two different inputs' line 7 are two letters and the same
    file replayed twice gives the same ones. The digest is not the payload.
    """
    if letter.topic is not None and letter.offset is not None:
        return f"{letter.topic}/{letter.partition}/{letter.offset}"
    digest = hashlib.sha256(letter.original.encode("utf-8", "replace")).hexdigest()[:24]
    where = f"line {letter.line}" if letter.line is not None else f"topic {letter.topic}"
    return f"{where} #{spell_digit_runs(digest)}"


def add_dead_letters(
    connection: Connection, letters: Iterable[DeadLetter], received_at: datetime
) -> int:
    """Record rejected inputs' origin, reason and message (never their payload); returns new."""
    rows = [
        {
            "origin": dead_letter_origin(letter),
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "line": letter.line,
            "reason": letter.reason,
            "message": letter.message,
            "received_at": received_at,
        }
        for letter in letters
    ]
    if not rows:
        return 0
    statement = (
        upsert_insert(connection, _LETTER)
        .on_conflict_do_nothing(index_elements=["origin"])
        .returning(_LETTER.c.id)
    )
    return len(connection.execute(statement, rows).all())


def apply_action(
    connection: Connection,
    alert_id: str,
    action: Literal["ack", "resolve", "assign"],
    operator_id: str,
    at: datetime,
    note: str | None = None,
    assignee: str | None = None,
) -> bool:
    """Move an alert along raised → acknowledged → resolved, or (v1.2) assign it to
    ``assignee``; True if it changed.

    Repeating an action, or acknowledging a resolved alert, changes nothing, so operator
    actions may be delivered more than once too. A note replaces the previous one. An
    assignment leaves the state alone; the latest by event time holds (one delivered late
    changes nothing), and a resolved alert is assigned to nobody new.
    """
    table = _ALERT
    if action == "assign":
        values: dict[str, Any] = {"assignee": assignee, "assigned_at": at,
                                  "assigned_by": operator_id}
        allowed = and_(table.c.state != "resolved",
                       or_(table.c.assigned_at.is_(None), table.c.assigned_at < at))
    elif action == "ack":
        values = {
            "state": "acknowledged", "acknowledged_at": at, "acknowledged_by": operator_id,
        }
        allowed = table.c.state == "raised"
    else:
        values = {"state": "resolved", "resolved_at": at, "resolved_by": operator_id}
        allowed = table.c.state != "resolved"
    if note is not None:
        values["note"] = note
    result = connection.execute(
        update(table).where(and_(table.c.alert_id == alert_id, allowed)).values(**values)
    )
    return bool(result.rowcount)


def note_escalations(connection: Connection, escalations: Iterable[Alert]) -> int:
    """Mark each escalated alert's row with its highest level and when it got there.

    An escalation names the alert it escalates in ``details.alert_id``; a level already
    recorded (or a higher one) is kept, so redelivery and any order change nothing.
    Returns how many rows moved up.
    """
    table = _ALERT
    changed = 0
    for escalation in escalations:
        level = int(escalation.details.get("level", 0))
        ident = str(escalation.details.get("alert_id", ""))
        result = connection.execute(
            update(table)
            .where(and_(table.c.alert_id == ident,
                        or_(table.c.escalation_level.is_(None),
                            table.c.escalation_level < level)))
            .values(escalation_level=level, escalated_at=_instant(escalation.raised_at))
        )
        changed += result.rowcount
    return changed
