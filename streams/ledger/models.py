"""The ledger's tables as SQLAlchemy 2 typed models.

The schema itself is owned by the Alembic migrations (``migrations/versions``); these models
must agree with them (a test compares the two). Constraint names come from one naming
convention so migrations can name what they alter or drop on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ALERT_STATES",
    "Alert",
    "AlertAction",
    "AlertEscalation",
    "Base",
    "ConsoleAccount",
    "ConsoleSession",
    "DailyReport",
    "DeadLetter",
    "Finding",
    "LedgerSecret",
    "LoginAttempt",
    "PersonState",
    "ProcessedEvent",
    "ReplayRun",
    "TimelineView",
    "UtcDateTime",
]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ALERT_STATES: Final = ("raised", "acknowledged", "resolved", "caught_up")
"""An alert's status: raised, acknowledged by an operator, resolved by one, or caught up
(a round_missed alert whose person was sampled within the catch-up window: closed by the
system). Resolved and caught up are closed: no action applies to them."""

FINDING_STATES: Final = ("open", "closed")
"""A finding is open until a passed recheck closes it (a failed one opens it again)."""

PSEUDONYM: Final = 128  # CONTRACT.md §2: a person_id is 8–128 characters
REFERENCE: Final = 128  # tube ids and other opaque references
NAME: Final = 200  # districts and other names


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant stored as UTC.

    SQLite has no time zones and SQLAlchemy drops the offset when it writes one there, so an
    instant in +08:00 would silently shift by eight hours. Converting to UTC on the way in and
    marking UTC on the way out keeps every instant exact and string order = time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores instants only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: UtcDateTime,
    }


class Alert(Base):
    """One alert of the engine, once, with what operators did about it."""

    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(
            "state IN ('raised', 'acknowledged', 'resolved', 'caught_up')", name="state"
        ),
        Index(None, "due_at"),
        # migration 0007, for the console's pages on a large ledger: open alerts newest
        # first, and those of a district or a kind, read in index order (no sort, no scan)
        Index(None, "state", "due_at"),
        Index(None, "district", "state", "due_at"),
        Index(None, "kind", "state", "due_at"),
        # the day's board counts open alerts by district and level from this index alone
        Index(None, "state", "district", "escalation_level"),
    )

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(REFERENCE))
    person_id: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    tube_id: Mapped[str | None] = mapped_column(String(REFERENCE))
    district: Mapped[str | None] = mapped_column(String(NAME))
    due_at: Mapped[datetime]
    raised_at: Mapped[datetime]
    details: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="raised", server_default="raised")
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    note: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int | None] = mapped_column(SmallInteger)  # 2, then 3 (city)
    escalated_at: Mapped[datetime | None]
    # v1.2 (migration 0004): the operator an ``assign`` action handed the alert to, when,
    # and by whom; the latest assignment by event time holds
    assignee: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    assigned_at: Mapped[datetime | None]
    assigned_by: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    # migration 0005: closed by the system when the person was caught up (round_missed)
    caught_up_at: Mapped[datetime | None]


class AlertAction(Base):
    """The audit: every operator action the ledger received, applied or not, once.

    ``acted_at`` is when the operator did it (wall time); ``effective_at`` the instant the
    engine applies it in event time (the same for an action from the action topic or a
    replayed file; for one recorded in the ledger, the earlier of the wall time and the
    ledger's clock). ``via`` says how it came: ``ledger`` (recorded by the command or the
    console without Kafka), ``kafka`` (the action topic, by the sink) or ``replay`` (an
    action line of a replayed file). ``outcome`` is ``applied`` or ``ignored`` with
    ``reason`` (agents/actions.py). ``event_id`` is the action event's: delivered again, it is
    the same row.
    """

    __tablename__ = "alert_action"
    __table_args__ = (
        UniqueConstraint("event_id"),
        CheckConstraint("outcome IN ('applied', 'ignored')", name="outcome"),
        Index(None, "alert_id", "acted_at"),
        Index(None, "subject"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(200))
    alert_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(REFERENCE))
    action: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[str] = mapped_column(String(PSEUDONYM))
    assignee: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    note: Mapped[str | None] = mapped_column(Text)
    acted_at: Mapped[datetime]
    effective_at: Mapped[datetime]
    via: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(32))


class AlertEscalation(Base):
    """Each level an alert escalated to, and when (the alert row keeps the highest)."""

    __tablename__ = "alert_escalation"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    escalated_at: Mapped[datetime]


class ReplayRun(Base):
    """One ``replay --ledger`` (or ``demo``) run into this ledger: when, and how far its
    engine clock got. The latest clock is the ledger's clock, which bounds the instant at
    which an action recorded in the ledger takes effect in the engine."""

    __tablename__ = "replay_run"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    command: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    clock: Mapped[datetime | None]  # None: the run read no event
    events_read: Mapped[int] = mapped_column(BigInteger)
    ledger_actions: Mapped[int] = mapped_column(Integer)  # actions of the ledger fed to it


class DailyReport(Base):
    """The 日清日结 report of one district for one local day (latest delivery wins)."""

    __tablename__ = "daily_report"

    district: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    date: Mapped[date] = mapped_column(primary_key=True)
    pushed: Mapped[int] = mapped_column(Integer)
    located: Mapped[int] = mapped_column(Integer)
    under_control: Mapped[int] = mapped_column(Integer)
    followup_overdue_open: Mapped[int] = mapped_column(Integer)
    tests_missed: Mapped[int] = mapped_column(Integer)
    positives: Mapped[int] = mapped_column(Integer)
    # v1.1 (migration 0003): counted in the district of the checkpoint or facility
    checkpoint_entries: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_without_proof: Mapped[int] = mapped_column(Integer, server_default="0")
    landing_tests_missed: Mapped[int] = mapped_column(Integer, server_default="0")
    sentinel_visits: Mapped[int] = mapped_column(Integer, server_default="0")
    sentinel_untested: Mapped[int] = mapped_column(Integer, server_default="0")
    # v1.2 (migration 0004): data entry, and supervision in the finding's district
    entries: Mapped[int] = mapped_column(Integer, server_default="0")
    entries_late: Mapped[int] = mapped_column(Integer, server_default="0")
    entry_lag_p90_minutes: Mapped[float | None] = mapped_column(Float)
    entries_rejected: Mapped[int] = mapped_column(Integer, server_default="0")
    findings_new: Mapped[int] = mapped_column(Integer, server_default="0")
    findings_open: Mapped[int] = mapped_column(Integer, server_default="0")
    rectifications_overdue: Mapped[int] = mapped_column(Integer, server_default="0")
    rechecks_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    repeat_offenders: Mapped[int] = mapped_column(Integer, server_default="0")


class RoundReport(Base):
    """One district's row of a testing round's progress, close or final report (v1.1)."""

    __tablename__ = "round_report"

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(primary_key=True)
    district: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    in_scope: Mapped[int] = mapped_column(Integer)
    sampled: Mapped[int] = mapped_column(Integer)
    missed: Mapped[int] = mapped_column(Integer)
    caught_up: Mapped[int] = mapped_column(Integer)
    not_on_roster: Mapped[int] = mapped_column(Integer)
    catchup_median_hours: Mapped[float | None] = mapped_column(Float)


class Finding(Base):
    """*v1.2* One supervision finding of a unit (migration 0008), as the engine's latest
    ``unit-status`` of the unit had it: what was found, where and when, whether a passed
    recheck closed it, and its rectifications and rechecks (``steps``: record, at, result),
    oldest first. A finding the engine forgot (``repeat_window`` after its last record) stays
    here as it was last published: the ledger keeps the history."""

    __tablename__ = "finding"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed')", name="state"),
        # the board counts open findings per district and severity from this index alone
        Index(None, "state", "district", "severity"),
    )

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    finding_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_kind: Mapped[str] = mapped_column(String(16))
    district: Mapped[str] = mapped_column(String(NAME))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    found_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(8))
    closed_at: Mapped[datetime | None]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class PersonState(Base):
    """A person's current status (the compacted ``person-status`` topic as a table).

    ``person_id`` is the pseudonym of the contract: raw identifiers never reach the ledger.
    """

    __tablename__ = "person_state"

    person_id: Mapped[str] = mapped_column(String(PSEUDONYM), primary_key=True)
    district: Mapped[str | None] = mapped_column(String(NAME), index=True)
    status: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class DeadLetter(Base):
    """Where a rejected input came from and why: never its payload.

    The payload (even redacted) stays on the dead-letter topic or file, with its retention;
    the ledger keeps what an operator counts and looks up. ``origin`` names the input's
    position (``topic/partition/offset``, or the line and a digest of the redacted line for a
    file, keyed with the ledger's own secret: a plain hash of personal input can be undone by
    trying every candidate), so the same rejection delivered twice is one row.
    """

    __tablename__ = "dead_letter"
    __table_args__ = (UniqueConstraint("origin"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    origin: Mapped[str] = mapped_column(String(400))
    topic: Mapped[str | None] = mapped_column(String(NAME))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    line: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    # migration 0005: the rejected record's key (person, tube, …) when it is a valid id
    # holding no raw identifier, so a subject's timeline can show its rejected records
    subject: Mapped[str | None] = mapped_column(String(REFERENCE), index=True)


class LedgerSecret(Base):
    """Random secrets the ledger keys its digests with (migration 0006), made when the
    ledger is created and never leaving it: ``dead_letter_origin``, the key of the digest
    in a file line's ``dead_letter.origin``."""

    __tablename__ = "ledger_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(64))


class ProcessedEvent(Base):
    """The highest offset of each output-topic partition the sink has written.

    Offsets in a partition are consumed in order, so one mark per partition (updated in the
    same transaction as the rows) tells a redelivered message from a new one at bounded size.
    """

    __tablename__ = "processed_event"

    topic: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ConsoleAccount(Base):
    """A web console account: its role, its districts (None: the whole city) and a slow salted
    hash of its password (never the password). A disabled account cannot sign in and its
    sessions are ended."""

    __tablename__ = "console_account"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role"),
    )

    name: Mapped[str] = mapped_column(String(PSEUDONYM), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    districts: Mapped[list[str] | None] = mapped_column(JSON)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser: the SHA-256 of its session token (the cookie holds the token, so
    reading this table gives no usable session), whose account, and until when."""

    __tablename__ = "console_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(PSEUDONYM), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LoginAttempt(Base):
    """One sign-in attempt: the account name tried (None when it is no valid name, so a
    resident ID typed by mistake is never kept), the client's address, when, and whether it
    succeeded. Failures in a recent window limit further attempts per account and address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index(None, "account", "attempted_at"),
        Index(None, "address", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    account: Mapped[str | None] = mapped_column(String(PSEUDONYM))
    address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)


class TimelineView(Base):
    """Every view of a subject's timeline (personal information): who, when, which subject,
    from where (``console`` or ``command line``) and how many entries it showed."""

    __tablename__ = "timeline_view"
    __table_args__ = (
        Index(None, "subject", "viewed_at"),
        Index(None, "operator_id", "viewed_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    operator_id: Mapped[str] = mapped_column(String(PSEUDONYM))
    subject: Mapped[str] = mapped_column(String(REFERENCE))
    viewed_at: Mapped[datetime]
    via: Mapped[str] = mapped_column(String(16))
    entries: Mapped[int] = mapped_column(Integer)
