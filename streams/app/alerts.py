"""Alerts for operators: listing with filters, sorting and pages, counts, and the values each
filter knows.

Call it with a connection on the ledger and the caller::

    from closedloop.streams.app import alerts
    wanted = alerts.AlertFilter(kinds=("positive",), states=alerts.OPEN)
    alerts.check_filters(connection, caller, wanted)          # UnknownValue: exit 2 / HTTP 400
    page = alerts.list_alerts(connection, caller, wanted, sort="severity", limit=50)
    page.rows, page.total                                      # rows carry level, last_action
    page = alerts.list_alerts(connection, caller, wanted, limit=50, count_limit=10_000)
    page.total, page.more            # more: over 10,000 match; total is then 10,000
    alerts.count_alerts(connection, caller, wanted, by="district")

Each row is the ledger's alert (alert_id, kind, subject, person_id, tube_id, district,
due_at, raised_at, details, state, acknowledged_*, resolved_*, caught_up_at, assignee,
assigned_at, assigned_by, note, escalation_level, escalated_at) with ``level`` (1 not escalated, 2
district command, 3 city command), ``last_action`` and ``last_by`` (the latest action
applied, and who). The caller's districts are part of the query: another district's alert is
never read.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.schemas.outputs import ALERT_KINDS
from closedloop.streams.app.caller import Caller
from closedloop.streams.app.names import LEVELS, OPEN, SORTS
from closedloop.streams.ledger import queries
from closedloop.streams.ledger.models import ALERT_STATES

__all__ = [
    "FILTERS",
    "LEVELS",
    "OPEN",
    "SEVERITY",
    "SORTS",
    "AlertFilter",
    "AlertPage",
    "UnknownValue",
    "check_filters",
    "closest",
    "count_alerts",
    "count_alerts_by",
    "find_alert",
    "known_values",
    "list_alerts",
    "reported_rounds",
    "severity_rank",
]


SEVERITY: Final = (
    "positive", "pool_positive", "retest_missed", "identity_suspect", "entry_without_proof",
    "unlocated", "orphan_result", "lab_sla_breached", "landing_test_missed",
    "sentinel_untested", "recheck_failed", "rectification_overdue", "repeat_offender",
    "recheck_missed", "lab_silent", "test_missed", "followup_overdue", "round_missed",
    "late_entries",
)
"""Alert kinds from the most to the least urgent: a positive first (someone infected, not
yet transferred), then what may hide one (a pooled positive, its retests, a borrowed
identity, an entry without proof, a traveller nobody located), then lapses of process.
Kinds not named here (a later contract's) come last."""

FILTERS: Final = ("kind", "district", "state", "level", "round")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts: each tuple empty means any. ``due_from``/``due_to``: due_at in
    [due_from, due_to). ``subjects`` matches the alert's subject, person_id or tube_id."""

    kinds: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    rounds: tuple[str, ...] = ()
    due_from: datetime | None = None
    due_to: datetime | None = None
    alert_ids: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertPage:
    rows: list[dict[str, Any]]
    total: int  # all the alerts the filter matches, not only this page's (at most count_limit)
    more: bool = False  # more than ``total`` match: the count stopped at ``count_limit``


class UnknownValue(ValueError):
    """A filter value the ledger has never seen: ``known`` lists those it has, closest first."""

    def __init__(self, field: str, value: str, known: Sequence[str]) -> None:
        self.field, self.value, self.known = field, value, list(known)
        shown = ", ".join(self.known) if self.known else "none yet"
        super().__init__(f"no {field} {value!r} in the ledger; known: {shown}")


def severity_rank() -> dict[str, int]:
    return {kind: rank for rank, kind in enumerate(SEVERITY)}


def closest(value: str, known: Sequence[str]) -> list[str]:
    """``known``, the closest to ``value`` first (difflib's ratio, case-blind; ties by name)."""
    def score(candidate: str) -> float:
        return difflib.SequenceMatcher(None, value.lower(), candidate.lower()).ratio()

    return sorted(known, key=lambda candidate: (-score(candidate), candidate))


def _criteria(caller: Caller, wanted: AlertFilter) -> queries.AlertCriteria:
    return queries.AlertCriteria(
        scope=caller.districts, kinds=wanted.kinds, districts=wanted.districts,
        states=wanted.states, levels=wanted.levels, due_from=wanted.due_from,
        due_to=wanted.due_to, rounds=wanted.rounds, alert_ids=wanted.alert_ids,
        subjects=wanted.subjects)


def known_values(connection: Connection, caller: Caller, field: str) -> list[str]:
    """The values of one filter (:data:`FILTERS`) the caller can use: kinds of the contract
    and of the ledger, districts of the caller's alerts, rounds with an alert or a report,
    the states and levels."""
    if field == "state":
        return list(ALERT_STATES)
    if field == "level":
        return [str(level) for level in LEVELS]
    if field == "round":  # a round nobody missed has reports, and no alert
        return sorted(set(queries.known_values(connection, caller.districts, field))
                      | set(reported_rounds(connection)))
    if field == "kind":
        # the contract's kinds are known to everyone; a kind of the ledger beyond them (a
        # later contract's) is probed in the caller's districts only, one lookup each: the
        # kinds of a district read by a scan of its alerts would cost more than a page
        beyond = [kind for kind in queries.distinct_values(connection, "kind")
                  if kind not in ALERT_KINDS]
        if caller.districts is not None:
            beyond = queries.kinds_present(connection, beyond, caller.districts)
        return sorted({*ALERT_KINDS, *beyond})
    return queries.known_values(connection, caller.districts, field)


def reported_rounds(connection: Connection) -> list[str]:
    """The rounds with a report in the ledger: cheap to read (the report table is small),
    where the rounds named by alerts are read from every round_missed alert's details."""
    return sorted({round_id for round_id, _, _ in queries.round_index(connection)})


def check_filters(connection: Connection, caller: Caller, wanted: AlertFilter) -> None:
    """Raise UnknownValue for the first filter value the ledger has never seen (for a kind:
    nor the contract), so a typo is never an empty list."""
    checks: list[tuple[str, Sequence[str]]] = [
        ("kind", wanted.kinds), ("district", wanted.districts), ("state", wanted.states),
        ("level", [str(level) for level in wanted.levels]), ("round", wanted.rounds)]
    for field, values in checks:
        if not values:
            continue
        if field == "round" and set(values) <= set(reported_rounds(connection)):
            continue  # known from the reports: the alerts' details need not be read
        known = known_values(connection, caller, field)
        for value in values:
            if value not in known:
                raise UnknownValue(field, value, closest(value, known))


def list_alerts(
    connection: Connection,
    caller: Caller,
    wanted: AlertFilter = AlertFilter(),
    *,
    sort: str = "due",
    offset: int = 0,
    limit: int | None = None,
    count_limit: int | None = None,
) -> AlertPage:
    """A page of the caller's alerts meeting ``wanted``, sorted (:data:`SORTS`).

    ``count_limit`` N stops counting the matches at N (``more`` then says there are more):
    a page on a ledger of millions reads its rows and at most N + 1 index entries, never
    every match."""
    if sort not in SORTS:
        raise ValueError(f"sort is one of {', '.join(SORTS)}")
    rows, total = queries.select_alerts(
        connection, _criteria(caller, wanted), order=sort, severity=severity_rank(),
        offset=offset, limit=limit, count_limit=count_limit)
    more = count_limit is not None and total > count_limit
    total = min(total, count_limit) if count_limit is not None else total
    latest = queries.latest_actions(connection, [row["alert_id"] for row in rows])
    for row in rows:
        row["level"] = row["escalation_level"] or 1
        last = latest.get(row["alert_id"])
        row["last_action"] = None if last is None else last["action"]
        row["last_by"] = None if last is None else last["operator_id"]
    return AlertPage(rows, total, more)


def count_alerts(connection: Connection, caller: Caller, wanted: AlertFilter = AlertFilter(),
                 *, by: str = "kind") -> dict[str | None, int]:
    """How many of the caller's alerts meet ``wanted``, by kind, district, state or level."""
    if by not in ("kind", "district", "state", "level"):
        raise ValueError("count by kind, district, state or level")
    return queries.count_alerts(connection, _criteria(caller, wanted), by)


def count_alerts_by(connection: Connection, caller: Caller, wanted: AlertFilter = AlertFilter(),
                    *, by: Sequence[str] = ("district", "level")
                    ) -> dict[tuple[str | None, ...], int]:
    """How many of the caller's alerts meet ``wanted`` per combination of ``by`` (kind,
    district, state, level): ``{("pudong", "3"): 2, …}``, values as text."""
    if not by or any(name not in ("kind", "district", "state", "level") for name in by):
        raise ValueError("count by kind, district, state or level")
    return queries.count_alerts_by(connection, _criteria(caller, wanted), by)


def find_alert(connection: Connection, caller: Caller, alert_id: str) -> dict[str, Any] | None:
    """One of the caller's alerts by id; None for an unknown id and for another district's."""
    page = list_alerts(connection, caller, replace(AlertFilter(), alert_ids=(alert_id,)))
    return page.rows[0] if page.rows else None
