"""Writing the engine's outputs into the ledger, idempotently.

These functions are the only writers of engine output: the Kafka sink and ``replay --ledger``
both call them, so the two fill the same rows the same way. Each is safe to call again with
the same records (at-least-once delivery, a replay run twice): an alert is inserted once and
keeps its lifecycle, a report or person status is replaced by its latest version, a dead
letter is one row per origin. The caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import msgspec
import orjson
from sqlalchemy import Connection, Table, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from closedloop.agents.actions import refusal
from closedloop.agents.closure import ENTRY_COUNTS
from closedloop.schemas.events import KEY_FIELD, REF_PATTERN, Action
from closedloop.schemas.identifiers import contains_raw
from closedloop.schemas.ids import spell_digit_runs
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    PersonStatus,
    RoundReport,
    UnitStatus,
)
from closedloop.streams.ledger import models

__all__ = [
    "ActionRecord",
    "action_record",
    "add_alerts",
    "add_dead_letters",
    "apply_action",
    "close_caught_up",
    "dead_letter_origin",
    "dead_letter_subject",
    "note_escalations",
    "origin_key",
    "put_person_states",
    "put_unit_statuses",
    "record_run",
    "record_timeline_view",
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
_FINDING: Final = _TABLES["finding"]
_LETTER: Final = _TABLES["dead_letter"]
_SECRET: Final = _TABLES["ledger_secret"]
ORIGIN_KEY: Final = "dead_letter_origin"  # the name of the secret origins are keyed with
_ROUND: Final = _TABLES["round_report"]
_AUDIT: Final = _TABLES["alert_action"]
_LEVELS: Final = _TABLES["alert_escalation"]
_RUN: Final = _TABLES["replay_run"]
_VIEWS: Final = _TABLES["timeline_view"]
_REF: Final = re.compile(REF_PATTERN)


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


def put_unit_statuses(connection: Connection, statuses: Iterable[UnitStatus]) -> int:
    """Upsert each finding of each unit status (v1.2 supervision); returns how many rows.

    The latest status of a unit (by ``updated_at``) holds: an older one redelivered does not
    move a finding back. A finding a status no longer lists (the engine forgot it) keeps its
    row, and a tombstone deletes nothing: the ledger keeps the history of findings.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for status in statuses:  # one row per key: ON CONFLICT DO UPDATE may touch a row once
        updated = _instant(status.updated_at)
        for finding in status.findings:
            key = (status.unit_id, finding.finding_id)
            held = latest.get(key)
            if held is not None and held["updated_at"] > updated:
                continue
            latest[key] = {
                "unit_id": status.unit_id, "finding_id": finding.finding_id,
                "unit_kind": finding.unit_kind, "district": finding.district,
                "category": finding.category, "severity": finding.severity,
                "found_at": _instant(finding.found_at),
                "state": "open" if finding.closed_at is None else "closed",
                "closed_at": None if finding.closed_at is None else _instant(finding.closed_at),
                "steps": msgspec.to_builtins(finding.steps), "updated_at": updated}
    if not latest:
        return 0
    statement = upsert_insert(connection, _FINDING)
    statement = statement.on_conflict_do_update(
        index_elements=["unit_id", "finding_id"],
        set_={name: statement.excluded[name] for name in (
            "unit_kind", "district", "category", "severity", "found_at", "state", "closed_at",
            "steps", "updated_at")},
        where=_FINDING.c.updated_at <= statement.excluded.updated_at,
    )
    connection.execute(statement, list(latest.values()))
    return len(latest)


def origin_key(connection: Connection) -> bytes:
    """The ledger's secret for dead-letter origins (made by migration 0006; made here if a
    ledger lost it, by whichever writer comes first)."""
    query = select(_SECRET.c.secret).where(_SECRET.c.name == ORIGIN_KEY)
    key = connection.execute(query).scalar_one_or_none()
    if key is None:
        connection.execute(upsert_insert(connection, _SECRET).values(
            name=ORIGIN_KEY, secret=secrets.token_bytes(32)).on_conflict_do_nothing())
        key = connection.execute(query).scalar_one()
    return bytes(key)


def dead_letter_origin(letter: DeadLetter, key: bytes) -> str:
    """Where a rejected input came from, as one string that is the same on every delivery.

    A Kafka input is named by its position. A file line is named by its number and a digest
    of its redacted copy, so two different inputs' line 7 are two letters and the same
    file replayed twice gives the same ones. The digest is HMAC-SHA256 under ``key``, the
    ledger's secret: a plain hash of a line can be matched against hashes of guessed lines.
    """
    if letter.topic is not None and letter.offset is not None:
        return f"{letter.topic}/{letter.partition}/{letter.offset}"
    digest = hmac.new(key, letter.original.encode("utf-8", "replace"),
                      hashlib.sha256).hexdigest()[:24]
    where = f"line {letter.line}" if letter.line is not None else f"topic {letter.topic}"
    return f"{where} #{spell_digit_runs(digest)}"


def dead_letter_subject(letter: DeadLetter) -> str | None:
    """The rejected record's key (its person, tube, …: the contract's key field of its topic)
    when it is a valid id holding no raw identifier; else None.

    Read from the redacted copy (a file line's envelope, or a Kafka record's value), so a
    subject's timeline can show its rejected records without the ledger keeping payloads.
    """
    if letter.original_encoding != "utf-8":
        return None
    try:
        parsed = orjson.loads(letter.original)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    topic = letter.topic
    if isinstance(parsed.get("value"), dict) and isinstance(parsed.get("topic"), str):
        topic, parsed = parsed["topic"], parsed["value"]  # a replay line's envelope
    field = KEY_FIELD.get(topic or "")
    key = parsed.get(field) if field is not None else None
    if not isinstance(key, str) or _REF.fullmatch(key) is None or contains_raw(key):
        return None
    return key


def add_dead_letters(
    connection: Connection, letters: Iterable[DeadLetter], received_at: datetime
) -> int:
    """Record rejected inputs' origin, reason, message and subject (never their payload);
    returns how many were new."""
    letters = list(letters)
    key = origin_key(connection) if letters else b""
    rows = [
        {
            "origin": dead_letter_origin(letter, key),
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "line": letter.line,
            "reason": letter.reason,
            "message": letter.message,
            "received_at": received_at,
            "subject": dead_letter_subject(letter),
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


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An operator's action as the ledger records it (``models.AlertAction``)."""

    event_id: str
    alert_id: str
    subject: str
    action: str  # ack | resolve | assign
    operator_id: str
    acted_at: datetime  # when the operator did it (wall time)
    effective_at: datetime  # when the engine applies it (event time)
    via: str  # ledger | kafka | replay
    note: str | None = None
    assignee: str | None = None


def action_record(action: Action, via: str) -> ActionRecord:
    """An action event as the audit keeps it, taking effect when it occurred (``via``:
    ``kafka`` from the action topic, ``replay`` from a replayed file)."""
    return ActionRecord(
        event_id=action.event_id, alert_id=action.alert_id, subject=action.subject,
        action=action.action, operator_id=action.operator_id, note=action.note,
        assignee=action.assignee, acted_at=action.occurred_at,
        effective_at=action.occurred_at, via=via)


def apply_action(
    connection: Connection, record: ActionRecord, *, record_unknown: bool = True
) -> tuple[str, str | None]:
    """Apply an operator's action to its alert by the one rule (``agents/actions.py``) and
    record it in the audit, applied or not; returns (outcome, reason).

    ``ack`` moves a raised alert to acknowledged (an acknowledged one keeps its first
    acknowledgement), ``resolve`` closes it, ``assign`` hands it to ``assignee`` (the latest
    assignment by its instant holds: one delivered late changes nothing); a note replaces the
    previous one. The row's instants are ``acted_at``. An action already recorded (the same
    event_id: a redelivery, a replay run twice) changes nothing and returns what it did then.
    With ``record_unknown`` False, an action on an alert the ledger does not hold yet is not
    recorded and returns ("pending", "unknown_alert"), for the caller to try again later.
    """
    done = connection.execute(
        select(_AUDIT.c.outcome, _AUDIT.c.reason).where(_AUDIT.c.event_id == record.event_id)
    ).first()
    if done is not None:
        return str(done.outcome), done.reason
    row = connection.execute(
        select(_ALERT.c.subject, _ALERT.c.state).where(_ALERT.c.alert_id == record.alert_id)
    ).first()
    reason = refusal(None if row is None else row.subject, None if row is None else row.state,
                     record.subject)
    if reason == "unknown_alert" and not record_unknown:
        return "pending", reason
    if reason is None:
        _change_alert(connection, record, str(row.state) if row is not None else "raised")
    connection.execute(upsert_insert(connection, _AUDIT).on_conflict_do_nothing(
        index_elements=["event_id"]), [{
            "event_id": record.event_id, "alert_id": record.alert_id,
            "subject": record.subject, "action": record.action,
            "operator_id": record.operator_id, "assignee": record.assignee,
            "note": record.note, "acted_at": record.acted_at,
            "effective_at": record.effective_at, "via": record.via,
            "outcome": "applied" if reason is None else "ignored", "reason": reason,
        }])
    return ("applied", None) if reason is None else ("ignored", reason)


def _change_alert(connection: Connection, record: ActionRecord, state: str) -> None:
    at = record.acted_at
    values: dict[str, Any] = {}
    if record.action == "ack" and state == "raised":
        values = {"state": "acknowledged", "acknowledged_at": at,
                  "acknowledged_by": record.operator_id}
    elif record.action == "resolve":
        values = {"state": "resolved", "resolved_at": at, "resolved_by": record.operator_id}
    elif record.action == "assign":
        values = {"assignee": record.assignee, "assigned_at": at,
                  "assigned_by": record.operator_id}
    if record.note is not None:
        values["note"] = record.note
    if not values:
        return
    where = _ALERT.c.alert_id == record.alert_id
    if record.action == "assign":  # the latest assignment holds, whatever order they come in
        where = and_(where, or_(_ALERT.c.assigned_at.is_(None), _ALERT.c.assigned_at < at))
    connection.execute(update(_ALERT).where(where).values(**values))


def note_escalations(connection: Connection, escalations: Iterable[Alert]) -> int:
    """Mark each escalated alert's row with its highest level and when it got there.

    An escalation names the alert it escalates in ``details.alert_id``; a level already
    recorded (or a higher one) is kept, so redelivery and any order change nothing.
    Returns how many rows moved up.
    """
    table = _ALERT
    changed = 0
    levels: dict[tuple[str, int], datetime] = {}
    for escalation in escalations:
        level = int(escalation.details.get("level", 0))
        ident = str(escalation.details.get("alert_id", ""))
        levels[(ident, level)] = _instant(escalation.raised_at)
        result = connection.execute(
            update(table)
            .where(and_(table.c.alert_id == ident,
                        or_(table.c.escalation_level.is_(None),
                            table.c.escalation_level < level)))
            .values(escalation_level=level, escalated_at=_instant(escalation.raised_at))
        )
        changed += result.rowcount
    if levels:
        connection.execute(
            upsert_insert(connection, _LEVELS).on_conflict_do_nothing(
                index_elements=["alert_id", "level"]),
            [{"alert_id": ident, "level": level, "escalated_at": at}
             for (ident, level), at in sorted(levels.items())])
    return changed


def close_caught_up(
    connection: Connection, person_ids: Sequence[str], catchup_within: int
) -> int:
    """Close each open ``round_missed`` alert of these persons whose person was sampled in
    (due_at, due_at + ``catchup_within`` seconds] (contract §4: caught up): status
    ``caught_up``, ``caught_up_at`` the first such sampling.

    The samplings are the person's in the ledger (``samplings`` of their status; a status
    written before it carried them gives ``last_sampled_at``). Whatever order alerts and
    statuses arrive in, each call takes the earliest catch-up it can see, so calling it after
    either is written converges on the first catch-up sampling. Returns how many alerts
    changed.
    """
    window = timedelta(seconds=catchup_within)
    changed = 0
    wanted = sorted(set(person_ids))
    for at in range(0, len(wanted), 500):  # bounded IN lists (SQLite limits parameters)
        chunk = wanted[at:at + 500]
        samplings = {
            person_id: _samplings(status)
            for person_id, status in connection.execute(
                select(_PERSON.c.person_id, _PERSON.c.status)
                .where(_PERSON.c.person_id.in_(chunk)))
        }
        alerts = connection.execute(
            select(_ALERT.c.alert_id, _ALERT.c.subject, _ALERT.c.due_at, _ALERT.c.state,
                   _ALERT.c.caught_up_at)
            .where(_ALERT.c.kind == "round_missed", _ALERT.c.subject.in_(chunk),
                   _ALERT.c.state.in_(("raised", "acknowledged", "caught_up"))))
        for alert in alerts.all():
            first = next((s for s in samplings.get(alert.subject, ())
                          if alert.due_at < s <= alert.due_at + window), None)
            if first is None or (alert.caught_up_at is not None and alert.caught_up_at <= first):
                continue
            connection.execute(update(_ALERT).where(
                _ALERT.c.alert_id == alert.alert_id,
                _ALERT.c.state.in_(("raised", "acknowledged", "caught_up")))
                .values(state="caught_up", caught_up_at=first))
            changed += 1
    return changed


def _samplings(status: dict[str, Any] | None) -> list[datetime]:
    """A stored status' sampling instants, oldest first."""
    status = status or {}
    texts = status.get("samplings") or (
        [status["last_sampled_at"]] if status.get("last_sampled_at") else [])
    return sorted(_instant(text) for text in texts)


def record_run(
    connection: Connection, *, command: str, started_at: datetime, finished_at: datetime,
    clock: datetime | None, events_read: int, ledger_actions: int,
) -> None:
    """Record one replay run into this ledger (its final clock is the ledger's clock)."""
    connection.execute(_RUN.insert().values(
        command=command, started_at=started_at, finished_at=finished_at, clock=clock,
        events_read=events_read, ledger_actions=ledger_actions))


def record_timeline_view(connection: Connection, *, operator_id: str, subject: str,
                         viewed_at: datetime, via: str, entries: int) -> None:
    """Record that ``operator_id`` viewed ``subject``'s timeline (the audit of views of
    personal information)."""
    connection.execute(_VIEWS.insert().values(
        operator_id=operator_id, subject=subject, viewed_at=viewed_at, via=via,
        entries=entries))
