"""Output records of CONTRACT.md §5: the alert, person status, daily report and dead letter.

Columns and kinds a minor version adds have defaults (0, or null), so a record written before
it still decodes, and a stage that does not count them yet writes 0.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

__all__ = [
    "ALERT_KINDS",
    "REJECTION_REASONS",
    "Alert",
    "DailyReport",
    "DeadLetter",
    "Escalation",
    "FindingStatus",
    "FindingStep",
    "PersonStatus",
    "PushStatus",
    "RoundReport",
    "RoundRow",
    "UnitStatus",
]

AlertKind = Literal[
    "unlocated",
    "followup_overdue",
    "test_missed",
    "positive",
    "pool_positive",
    "retest_missed",
    "lab_sla_breached",
    "orphan_result",
    "identity_suspect",
    "round_missed",
    "entry_without_proof",
    "landing_test_missed",
    "sentinel_untested",
    "late_entries",
    "lab_silent",
    "rectification_overdue",
    "recheck_missed",
    "recheck_failed",
    "repeat_offender",
]
ALERT_KINDS: Final = AlertKind.__args__  # type: ignore[attr-defined]

RejectionReason = Literal[
    "not_json",
    "not_object",
    "unknown_topic",
    "bad_envelope",
    "missing_field",
    "wrong_type",
    "unknown_enum",
    "invalid_value",
    "invalid_timestamp",
    "naive_timestamp",
    "raw_identifier",
    "unknown_cohort",
    "pool_overflow",
    "implausible_time",
    "duplicate_key",
    "internal_error",
]
REJECTION_REASONS: Final = RejectionReason.__args__  # type: ignore[attr-defined]


class Alert(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """One alert. ``alert_id`` is a digest of (kind, subject, due_at): stable on every run.

    ``raised_at`` is event time: the instant at which the alert's condition became true
    (``due_at`` for a lapsed deadline, the latest contributing event for a result), so the
    same input gives the same bytes in replay and in the worker alike.
    """

    alert_id: str
    kind: AlertKind
    subject: str
    person_id: str | None
    tube_id: str | None
    district: str | None
    due_at: str
    raised_at: str
    details: dict[str, Any]


class Escalation(Alert, frozen=True, kw_only=True):
    """An alert nobody handled in time, on its own ``escalations`` topic, never on ``alerts``.

    The contract's ``alerts`` topic has exactly its listed kinds; an escalation is the same object
    with kind ``escalated`` and ``details`` = {alert_id, alert_kind, level} (2: district
    command, 3: city command), so consumers of ``alerts`` see nothing new.
    """

    kind: Literal["escalated"]  # type: ignore[assignment]


class PushStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The travel-push regimen a person is under, as downstream services see it."""

    risk: str
    regimen: str
    arrived_at: str
    pushed_at: str
    ends_at: str
    located_at: str | None
    last_cleared_at: str | None
    released_at: str | None


class PersonStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A person's current state, published to the compacted ``person-status`` topic."""

    person_id: str
    district: str | None
    updated_at: str
    under_control: bool
    push: PushStatus | None
    cohorts: list[str]
    open_requirements: list[str]
    last_sampled_at: str | None
    last_result: str | None
    # the collection instants of the samplings the engine still holds for the person (oldest
    # first, within state_retention): the ledger finds a round_missed person's first
    # catch-up sampling in them, whatever order statuses and alerts reach it
    samplings: list[str] = []


class FindingStep(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.2* A finding's rectification (``rectified``) or look-back (``recheck``), when."""

    record: Literal["rectified", "recheck"]
    at: str
    result: Literal["pass", "fail"] | None = None  # a recheck's


class FindingStatus(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.2* One finding of a unit as its records stand: open unless a passed recheck closed
    it (``closed_at``), with its rectifications and rechecks in event time."""

    finding_id: str
    unit_kind: str
    district: str
    category: str
    severity: str
    found_at: str
    closed_at: str | None
    steps: list[FindingStep]


class UnitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.2* A supervised unit's findings the engine holds (kept ``repeat_window`` after
    their last record), for the ledger: published to the compacted ``unit-status`` topic,
    keyed by unit_id, when an inspection record or a lapse changed them."""

    unit_id: str
    updated_at: str
    findings: list[FindingStatus]  # by found_at, then finding_id


class DailyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The 日清日结 report of one district for one local day, at the daily cut-off."""

    district: str
    date: str
    pushed: int
    located: int
    under_control: int
    followup_overdue_open: int
    tests_missed: int
    positives: int
    checkpoint_entries: int = 0  # v1.1: in the district of the checkpoint or facility
    entries_without_proof: int = 0
    landing_tests_missed: int = 0
    sentinel_visits: int = 0
    sentinel_untested: int = 0
    # v1.2 data entry: records of known entry lag naming the district, occurred_at in the
    # day's window; the 90th percentile of their lags (null when there are none); rejected
    # input naming the district, counted in the first report not yet raised when read
    entries: int = 0
    entries_late: int = 0
    entry_lag_p90_minutes: float | None = None
    entries_rejected: int = 0
    # v1.2 supervision, in the finding's district: findings made in the window, findings
    # not closed by a passed recheck at the cut-off, and findings whose lapse, failed
    # recheck or repeat is due in the window
    findings_new: int = 0
    findings_open: int = 0
    rectifications_overdue: int = 0
    rechecks_failed: int = 0
    repeat_offenders: int = 0


class RoundRow(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* One district of a testing round's report (CONTRACT.md §4)."""

    district: str
    in_scope: int
    sampled: int
    missed: int
    caught_up: int
    not_on_roster: int
    catchup_median_hours: float | None


class RoundReport(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A testing round's ``progress``, ``close`` or ``final`` report, as of ``as_of``."""

    round_id: str
    stage: Literal["progress", "close", "final"]
    as_of: str
    rows: list[RoundRow]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A rejected input: why (``reason``, ``message``), where from, and its redacted bytes."""

    reason: RejectionReason
    message: str
    topic: str | None
    partition: int | None
    offset: int | None
    line: int | None
    original: str
    original_encoding: Literal["utf-8", "base64"]
