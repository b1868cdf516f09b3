"""Reading the ledger for operators: open alerts, the 日清日结 table with its backlog, and
testing rounds' reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, Select, case, func, or_, select

from closedloop.streams.ledger import models
from closedloop.streams.ledger.store import NO_ROWS, REPORT_COUNTS, ROUND_COUNTS

__all__ = [
    "REPORT_COLUMNS",
    "ROUND_COLUMNS",
    "ROUND_FIELDS",
    "STAGES",
    "AlertCriteria",
    "alert_actions",
    "count_alerts",
    "count_alerts_by",
    "daily_report",
    "daily_series",
    "dead_letters_of",
    "distinct_values",
    "escalation_levels",
    "findings_of",
    "kinds_present",
    "known_values",
    "last_samplings",
    "latest_actions",
    "ledger_actions",
    "ledger_clock",
    "open_findings",
    "report_days",
    "report_districts",
    "round_index",
    "round_report",
    "round_reports",
    "round_series",
    "select_alerts",
]

REPORT_COLUMNS: Final = ("district", "date", *REPORT_COUNTS, "alerts_unresolved")
ROUND_COLUMNS: Final = ("district", *ROUND_COUNTS)
STAGES: Final = ("progress", "close", "final")

_ALERT: Final = models.Base.metadata.tables["alert"]
_REPORT: Final = models.Base.metadata.tables["daily_report"]
_ROUND: Final = models.Base.metadata.tables["round_report"]
ROUND_FIELDS: Final = tuple(column.name for column in _ROUND.columns)
"""Every field of a round report's row (its csv header, rows or none)."""
_PERSON: Final = models.Base.metadata.tables["person_state"]
_FINDING: Final = models.Base.metadata.tables["finding"]
_AUDIT: Final = models.Base.metadata.tables["alert_action"]
_LEVELS: Final = models.Base.metadata.tables["alert_escalation"]
_LETTER: Final = models.Base.metadata.tables["dead_letter"]
_RUN: Final = models.Base.metadata.tables["replay_run"]


def ledger_clock(connection: Connection) -> datetime | None:
    """The latest engine clock a replay into this ledger reached (None: no run yet)."""
    value = connection.execute(select(func.max(_RUN.c.clock))).scalar_one_or_none()
    return None if value is None else models.UtcDateTime().process_result_value(
        value, connection.dialect)


def ledger_actions(connection: Connection) -> list[dict[str, Any]]:
    """The ack and resolve actions recorded in this ledger (``via`` ledger) and applied, by
    effective instant: what ``replay --ledger`` feeds back to the engine."""
    query = (select(_AUDIT.c.event_id, _AUDIT.c.alert_id, _AUDIT.c.subject, _AUDIT.c.action,
                    _AUDIT.c.operator_id, _AUDIT.c.note, _AUDIT.c.effective_at)
             .where(_AUDIT.c.via == "ledger", _AUDIT.c.outcome == "applied",
                    _AUDIT.c.action.in_(("ack", "resolve")))
             .order_by(_AUDIT.c.effective_at, _AUDIT.c.id))
    return [dict(row) for row in connection.execute(query).mappings()]


@dataclass(frozen=True, slots=True)
class AlertCriteria:
    """Which alerts to read: each tuple empty means any. ``scope`` is the caller's districts
    (None: the whole city); an alert with no district is in no district's scope."""

    scope: frozenset[str] | None = None
    kinds: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()  # 1: not escalated; 2, 3: the highest level reached
    due_from: datetime | None = None  # due_at in [due_from, due_to)
    due_to: datetime | None = None
    rounds: tuple[str, ...] = ()  # round_missed alerts whose details.rounds holds one
    alert_ids: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()  # the alert's subject, person_id or tube_id


def _where(query: Select[Any], c: AlertCriteria) -> Select[Any]:
    table = _ALERT
    districts: Sequence[str] | None = c.districts or None
    if c.scope is not None:
        # one condition on the district, not two: PostgreSQL would multiply their
        # selectivities and plan for far fewer rows than the district holds
        districts = sorted(c.scope if districts is None else set(districts) & c.scope)
    if c.kinds:
        query = query.where(table.c.kind.in_(c.kinds))
    if c.rounds:
        query = query.where(table.c.kind == "round_missed")
    if districts is not None:
        query = query.where(table.c.district.in_(districts))
    if c.states:
        query = query.where(table.c.state.in_(c.states))
    if c.levels:
        level = func.coalesce(table.c.escalation_level, 1)
        query = query.where(level.in_(c.levels))
    if c.due_from is not None:
        query = query.where(table.c.due_at >= c.due_from)
    if c.due_to is not None:
        query = query.where(table.c.due_at < c.due_to)
    if c.alert_ids:
        query = query.where(table.c.alert_id.in_(c.alert_ids))
    if c.subjects:
        query = query.where(or_(table.c.subject.in_(c.subjects),
                                table.c.person_id.in_(c.subjects),
                                table.c.tube_id.in_(c.subjects)))
    return query


def _in_rounds(rows: list[dict[str, Any]], rounds: Sequence[str]) -> list[dict[str, Any]]:
    """The rows whose ``details.rounds`` holds one of ``rounds``: tested here, on the rows of
    kind round_missed, so JSON is read the same way on PostgreSQL and SQLite."""
    wanted = set(rounds)
    return [row for row in rows if wanted.intersection((row["details"] or {}).get("rounds") or ())]


def select_alerts(
    connection: Connection,
    criteria: AlertCriteria,
    *,
    order: str = "due",
    severity: Mapping[str, int] | None = None,
    offset: int = 0,
    limit: int | None = None,
    count_limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The alerts that meet ``criteria`` and their total: (a page of rows, how many in all).

    ``order``: ``due`` (oldest due first), ``newest`` (latest due first) or ``severity``
    (``severity`` ranks kinds, lowest first; then the highest escalation level, then newest).
    ``count_limit`` N: count at most N + 1 of them (a total above N means "more than N"), so
    a page of a ledger of millions never counts them all.
    """
    table = _ALERT
    if order == "severity":
        rank = case(dict(severity or {}), value=table.c.kind, else_=len(severity or {}))
        ordering = [rank, func.coalesce(table.c.escalation_level, 1).desc(),
                    table.c.due_at.desc(), table.c.alert_id]
    elif order == "newest":
        ordering = [table.c.due_at.desc(), table.c.alert_id]
    else:
        ordering = [table.c.due_at, table.c.alert_id]
    query = _where(select(table), criteria).order_by(*ordering)
    if criteria.rounds:  # filtered on JSON here, then paged
        rows = _in_rounds([dict(r) for r in connection.execute(query).mappings()],
                          criteria.rounds)
        end = None if limit is None else offset + limit
        return rows[offset:end], len(rows)
    if count_limit is None:
        counted = _where(select(func.count()).select_from(table), criteria)
    else:
        some = _where(select(table.c.alert_id), criteria).limit(count_limit + 1).subquery()
        counted = select(func.count()).select_from(some)
    total = connection.execute(counted).scalar_one()
    query = query.offset(offset) if offset else query
    query = query.limit(limit) if limit is not None else query
    return [dict(r) for r in connection.execute(query).mappings()], int(total)


def count_alerts(connection: Connection, criteria: AlertCriteria, by: str
                 ) -> dict[str | None, int]:
    """How many alerts meet ``criteria``, by ``by`` (kind, district, state or level)."""
    table = _ALERT
    column = (func.coalesce(table.c.escalation_level, 1) if by == "level"
              else table.c[by])
    if criteria.rounds:
        rows, _ = select_alerts(connection, criteria)
        counts: dict[str | None, int] = {}
        for row in rows:
            key = str(row["escalation_level"] or 1) if by == "level" else row[by]
            counts[key] = counts.get(key, 0) + 1
        return counts
    query = _where(select(column, func.count()).select_from(table), criteria).group_by(column)
    return {None if key is None else str(key): int(count)
            for key, count in connection.execute(query)}


def count_alerts_by(connection: Connection, criteria: AlertCriteria, columns: Sequence[str]
                    ) -> dict[tuple[str | None, ...], int]:
    """How many alerts meet ``criteria`` per combination of ``columns`` (kind, district,
    state, level), e.g. (district, level): {("pudong", "2"): 3, …}; values as text."""
    table = _ALERT
    keys = [func.coalesce(table.c.escalation_level, 1) if name == "level" else table.c[name]
            for name in columns]
    if criteria.rounds:
        rows, _ = select_alerts(connection, criteria)
        counts: dict[tuple[str | None, ...], int] = {}
        for row in rows:
            key = tuple(str(row["escalation_level"] or 1) if name == "level" else row[name]
                        for name in columns)
            counts[key] = counts.get(key, 0) + 1
        return counts
    query = _where(select(*keys, func.count()).select_from(table), criteria).group_by(*keys)
    return {tuple(None if value is None else str(value) for value in row[:-1]): int(row[-1])
            for row in connection.execute(query)}


def distinct_values(connection: Connection, field: str, scope: frozenset[str] | None = None
                    ) -> list[str]:
    """Every value of the alert column ``field`` (kind or district, each the first column of
    an index) among the alerts in ``scope``, sorted, read as a loose index scan: one index
    descent per value (the least value after the last one found), never a read of every
    alert as SELECT DISTINCT would be on a ledger of millions (neither PostgreSQL nor SQLite
    skips through an index by itself)."""
    if field == "district" and scope is not None:
        # an account's few districts are probed one by one: the skip below, asked for the
        # district after the account's last, finds none, and where the visibility map lags
        # (a long transaction holds vacuum back) PostgreSQL plans that empty probe as a
        # sequential scan of every alert
        return [district for district in sorted(scope) if connection.execute(
            select(_ALERT.c.alert_id).where(_ALERT.c.district == district).limit(1)
        ).first() is not None]
    column = _ALERT.c[field]
    where = [] if scope is None else [_ALERT.c.district.in_(sorted(scope))]
    found = (select(func.min(column).label("value")).where(*where)
             .cte(f"known_{field}", recursive=True))
    following = select(select(func.min(column)).where(column > found.c.value, *where)
                       .scalar_subquery()).where(found.c.value.is_not(None))
    found = found.union_all(following)
    query = select(found.c.value).where(found.c.value.is_not(None))
    return sorted(str(value) for (value,) in connection.execute(query))


def kinds_present(connection: Connection, kinds: Sequence[str], scope: frozenset[str]
                  ) -> list[str]:
    """Those of ``kinds`` that some alert of ``scope`` has (one EXISTS probe a kind)."""
    return [kind for kind in kinds if connection.execute(
        select(_ALERT.c.alert_id).where(_ALERT.c.kind == kind,
                                        _ALERT.c.district.in_(sorted(scope))).limit(1)
    ).first() is not None]


def known_values(connection: Connection, scope: frozenset[str] | None, field: str
                 ) -> list[str]:
    """Every value of ``field`` (kind, district, round) among the alerts in ``scope``."""
    if field in ("district", "kind"):
        return distinct_values(connection, field, scope)
    criteria = AlertCriteria(scope=scope)
    if field == "round":
        query = _where(select(_ALERT.c.details).where(_ALERT.c.kind == "round_missed"),
                       criteria)
        found: set[str] = set()
        for (details,) in connection.execute(query):
            found.update(str(r) for r in (details or {}).get("rounds") or ())
        return sorted(found)
    column = _ALERT.c[field]
    query = _where(select(column).where(column.is_not(None)).distinct(), criteria)
    return sorted(str(value) for (value,) in connection.execute(query))


def latest_actions(connection: Connection, alert_ids: Sequence[str]
                   ) -> dict[str, dict[str, Any]]:
    """Each alert's latest applied action in the audit: {alert_id: {action, operator_id,
    acted_at, …}} (alerts no action applied to are left out)."""
    found: dict[str, dict[str, Any]] = {}
    wanted = sorted(set(alert_ids))
    for at in range(0, len(wanted), 500):
        query = (select(_AUDIT).where(_AUDIT.c.alert_id.in_(wanted[at:at + 500]),
                                      _AUDIT.c.outcome == "applied")
                 .order_by(_AUDIT.c.acted_at, _AUDIT.c.id))
        for row in connection.execute(query).mappings():
            found[row["alert_id"]] = dict(row)
    return found


def alert_actions(connection: Connection, alert_ids: Sequence[str], subjects: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """The audit rows of these alerts, or naming one of these subjects, oldest first."""
    if not alert_ids and not subjects:
        return []
    query = (select(_AUDIT).where(or_(_AUDIT.c.alert_id.in_(sorted(set(alert_ids))),
                                      _AUDIT.c.subject.in_(sorted(set(subjects)))))
             .order_by(_AUDIT.c.acted_at, _AUDIT.c.id))
    return [dict(row) for row in connection.execute(query).mappings()]


def escalation_levels(connection: Connection, alert_ids: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """Each level these alerts escalated to, and when, oldest first."""
    if not alert_ids:
        return []
    query = (select(_LEVELS).where(_LEVELS.c.alert_id.in_(sorted(set(alert_ids))))
             .order_by(_LEVELS.c.escalated_at, _LEVELS.c.level))
    return [dict(row) for row in connection.execute(query).mappings()]


def dead_letters_of(connection: Connection, subject: str) -> list[dict[str, Any]]:
    """The rejected records whose key was ``subject`` (never their payload), oldest first."""
    query = (select(_LETTER.c.received_at, _LETTER.c.topic, _LETTER.c.line, _LETTER.c.offset,
                    _LETTER.c.partition, _LETTER.c.reason, _LETTER.c.message)
             .where(_LETTER.c.subject == subject).order_by(_LETTER.c.id))
    return [dict(row) for row in connection.execute(query).mappings()]


def findings_of(connection: Connection, unit_id: str, scope: frozenset[str] | None = None
                ) -> list[dict[str, Any]]:
    """The supervision findings of ``unit_id`` (v1.2) in ``scope``'s districts (None: all),
    oldest first, each with its steps (rectifications and rechecks) as stored."""
    query = select(_FINDING).where(_FINDING.c.unit_id == unit_id)
    if scope is not None:
        query = query.where(_FINDING.c.district.in_(sorted(scope)))
    query = query.order_by(_FINDING.c.found_at, _FINDING.c.finding_id)
    return [dict(row) for row in connection.execute(query).mappings()]


def open_findings(connection: Connection, scope: frozenset[str] | None = None
                  ) -> dict[tuple[str, str], int]:
    """Open supervision findings (v1.2) by (district, severity), in ``scope``'s districts
    (None: all), from the index on (state, district, severity) alone."""
    query = (select(_FINDING.c.district, _FINDING.c.severity, func.count())
             .where(_FINDING.c.state == "open")
             .group_by(_FINDING.c.district, _FINDING.c.severity))
    if scope is not None:
        query = query.where(_FINDING.c.district.in_(sorted(scope)))
    return {(district, severity): n for district, severity, n in connection.execute(query)}


def last_samplings(connection: Connection, person_ids: Sequence[str]) -> dict[str, datetime]:
    """Each person's latest sampling as their state in the ledger says (``last_sampled_at`` of
    ``person-status``); persons with none, or no state, are left out."""
    found: dict[str, datetime] = {}
    wanted = sorted(set(person_ids))
    for at in range(0, len(wanted), 500):  # bounded IN lists (SQLite limits parameters)
        rows = connection.execute(select(_PERSON.c.person_id, _PERSON.c.status).where(
            _PERSON.c.person_id.in_(wanted[at:at + 500])))
        for person_id, status in rows:
            text = (status or {}).get("last_sampled_at")
            if text:
                found[person_id] = datetime.fromisoformat(text)
    return found


def round_reports(connection: Connection, round_id: str) -> list[tuple[str, datetime]]:
    """The (stage, as_of) of every report of ``round_id`` in the ledger, oldest first."""
    query = (select(_ROUND.c.stage, _ROUND.c.as_of).where(_ROUND.c.round_id == round_id)
             .distinct().order_by(_ROUND.c.as_of, _ROUND.c.stage))
    return [(stage, as_of) for stage, as_of in connection.execute(query)]


def round_index(connection: Connection) -> list[tuple[str, str, datetime]]:
    """The (round_id, stage, as_of) of every round report in the ledger, by round and time."""
    query = (select(_ROUND.c.round_id, _ROUND.c.stage, _ROUND.c.as_of).distinct()
             .order_by(_ROUND.c.round_id, _ROUND.c.as_of, _ROUND.c.stage))
    return [(round_id, stage, as_of) for round_id, stage, as_of in connection.execute(query)]


def round_report(
    connection: Connection, round_id: str, stage: str, as_of: datetime,
    scope: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """One report's district rows, by district (a report stored without rows gives []);
    only the districts of ``scope`` when given."""
    query = (select(_ROUND)
             .where(_ROUND.c.round_id == round_id, _ROUND.c.stage == stage,
                    _ROUND.c.as_of == as_of, _ROUND.c.district != NO_ROWS)
             .order_by(_ROUND.c.district))
    if scope is not None:
        query = query.where(_ROUND.c.district.in_(sorted(scope)))
    return [dict(row) for row in connection.execute(query).mappings()]


def round_series(connection: Connection, round_id: str, scope: frozenset[str] | None = None
                 ) -> list[dict[str, Any]]:
    """Every district row of every report of ``round_id`` (all stages), by as_of then
    district: how its coverage moved; only the districts of ``scope`` when given."""
    query = (select(_ROUND).where(_ROUND.c.round_id == round_id, _ROUND.c.district != NO_ROWS)
             .order_by(_ROUND.c.as_of, _ROUND.c.stage, _ROUND.c.district))
    if scope is not None:
        query = query.where(_ROUND.c.district.in_(sorted(scope)))
    return [dict(row) for row in connection.execute(query).mappings()]


def daily_series(connection: Connection, first: date, last: date, column: str,
                 scope: frozenset[str] | None = None) -> list[tuple[date, str, int]]:
    """(date, district, value of ``column``) of the daily reports from ``first`` to ``last``
    (both included), by date then district; only the districts of ``scope`` when given."""
    query = (select(_REPORT.c.date, _REPORT.c.district, _REPORT.c[column])
             .where(_REPORT.c.date >= first, _REPORT.c.date <= last)
             .order_by(_REPORT.c.date, _REPORT.c.district))
    if scope is not None:
        query = query.where(_REPORT.c.district.in_(sorted(scope)))
    return [(day, str(district), int(value or 0))
            for day, district, value in connection.execute(query)]


def report_days(connection: Connection, scope: frozenset[str] | None = None
                ) -> list[tuple[date, int]]:
    """Every day with a daily report, newest first, with how many districts it covers."""
    query = select(_REPORT.c.date, func.count()).group_by(_REPORT.c.date).order_by(
        _REPORT.c.date.desc())
    if scope is not None:
        query = query.where(_REPORT.c.district.in_(sorted(scope)))
    return [(day, int(count)) for day, count in connection.execute(query)]


def daily_report(
    connection: Connection, day: date, cutoff: datetime, districts: Sequence[str] = (),
    scope: frozenset[str] | None = None, *, backlog: bool = True,
) -> list[dict[str, Any]]:
    """Each district's report for ``day``, by district, with ``alerts_unresolved`` (unless
    ``backlog`` is False: a reader that counts open alerts its own way skips that count).

    ``alerts_unresolved`` is read now from the alert table: the district's alerts raised by
    the day's cut-off that are not closed yet (neither resolved nor caught up) — the backlog
    the closure meeting has to clear, which the engine's report (fixed at the cut-off)
    cannot know.
    """
    query = select(_REPORT).where(_REPORT.c.date == day).order_by(_REPORT.c.district)
    if districts:
        query = query.where(_REPORT.c.district.in_(districts))
    if scope is not None:
        query = query.where(_REPORT.c.district.in_(sorted(scope)))
    rows = [dict(row) for row in connection.execute(query).mappings()]
    if not backlog:
        return rows
    unresolved = connection.execute(
        select(_ALERT.c.district, func.count())
        .where(
            # the open states, named rather than "not closed", so the state index serves
            # it instead of a scan of every alert the ledger ever held
            _ALERT.c.state.in_(("raised", "acknowledged")),
            _ALERT.c.raised_at <= cutoff,
            _ALERT.c.district.in_([row["district"] for row in rows]),
        )
        .group_by(_ALERT.c.district)
    )
    counts = {district: int(count) for district, count in unresolved}
    for row in rows:
        row["alerts_unresolved"] = counts.get(row["district"], 0)
    return rows


def report_districts(connection: Connection) -> list[str]:
    """Every district with a daily or a round report."""
    daily = select(_REPORT.c.district).distinct()
    rounds = select(_ROUND.c.district).where(_ROUND.c.district != NO_ROWS).distinct()
    return sorted({str(d) for (d,) in connection.execute(daily)}
                  | {str(d) for (d,) in connection.execute(rounds)})
