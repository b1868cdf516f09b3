"""Input events of CONTRACT.md §3, one typed model per topic.

Models are ``msgspec.Struct`` classes: the decoder converts orjson's output into them in one
C-level pass, which measured fastest of the validators tried (schemas/VALIDATION.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "INPUT_TOPICS",
    "MODELS",
    "Action",
    "Area",
    "Checkpoint",
    "Clinic",
    "Cohort",
    "Event",
    "Followup",
    "Inspection",
    "Lab",
    "Population",
    "Round",
    "Sampling",
    "Travel",
]

PSEUDONYM_PATTERN: Final = r"^[A-Za-z0-9_.:-]{8,128}$"
REF_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,128}$"


def exact(pattern: str) -> str:
    r"""``pattern`` (JSON Schema's ECMA-262 text) for Python's ``re``, whose ``$`` also matches
    before a final newline: msgspec took ``"pz:abcdefgh\n"`` as a person_id. ``\Z`` matches
    only at the very end; ``generate`` writes it back as ``$`` for the JSON Schemas."""
    return pattern.removesuffix("$") + r"\Z"


PersonId = Annotated[
    str,
    msgspec.Meta(pattern=exact(PSEUDONYM_PATTERN),
                 description="opaque pseudonym, never a raw identifier"),
]
Ref = Annotated[str, msgspec.Meta(pattern=exact(REF_PATTERN), description="an opaque reference")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Instant = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset; naive is bad input")
]
Latitude = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
PoolSize = Annotated[int, msgspec.Meta(ge=1, le=100)]

Risk = Literal["high", "medium", "outside_province", "inside_province"]
LabStatus = Literal["received", "reported"]
LabResult = Literal["negative", "positive", "invalid"]
FollowupKind = Literal["located", "visit", "released"]
ActionKind = Literal["ack", "resolve", "assign"]
RosterStatus = Literal["resident", "floating", "left"]
Role = Literal["driver", "passenger"]
Level = Literal["high", "medium", "low"]
FacilityKind = Literal["hospital", "clinic", "pharmacy"]
VisitReason = Literal["fever", "respiratory", "antipyretic"]
UnitKind = Literal["venue", "site", "company", "facility", "checkpoint", "school", "institution"]
InspectionRecord = Literal["finding", "rectified", "recheck"]
Severity = Literal["minor", "major", "critical"]
RecheckResult = Literal["pass", "fail"]

Grid = Annotated[str, msgspec.Meta(pattern=exact(r"^[A-Za-z0-9_.:-]{1,64}$"),
                                   description="a grid (网格) of the district")]
RoundId = Annotated[str, msgspec.Meta(pattern=exact(r"^[A-Za-z0-9_.:-]{1,64}$"))]
County = Annotated[str, msgspec.Meta(pattern=exact(r"^[A-Za-z0-9_.:-]{1,32}$"),
                                     description="a county code")]
UnitId = Annotated[str, msgspec.Meta(
    pattern=exact(r"^[A-Za-z0-9_.:-]{1,64}$"),
    description="a venue, sampling site, company, facility, checkpoint, school or institution")]
FindingId = Annotated[str, msgspec.Meta(pattern=exact(r"^[A-Za-z0-9_.:-]{1,64}$"))]
Category = Annotated[str, msgspec.Meta(
    pattern=exact(r"^[a-z0-9_]{1,32}$"),
    description="what was found wanting, e.g. venue_code, roster, test_frequency, protection")]
ALL_DISTRICTS: Final = "*"


class Sampling(msgspec.Struct, frozen=True, kw_only=True):
    """A swab taken; ``occurred_at`` is the collection time. Keyed by ``tube_id``."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    tube_id: Ref
    site_id: Ref
    district: Name
    pool_size: PoolSize
    site_lat: Latitude | None = None
    site_lon: Longitude | None = None
    reason: Name | None = None


class Lab(msgspec.Struct, frozen=True, kw_only=True):
    """A tube's progress at a lab. ``result`` is required when ``status`` is ``reported``."""

    event_id: EventId
    occurred_at: Instant
    tube_id: Ref
    lab_id: Ref
    status: LabStatus
    result: LabResult | None = None


class Travel(msgspec.Struct, frozen=True, kw_only=True):
    """A travel record pushed by higher authorities; ``occurred_at`` is the push time."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    district: Name
    arrived_at: Instant
    origin: Name
    risk: Risk


class Followup(msgspec.Struct, frozen=True, kw_only=True):
    """A grid worker's record: located, a daily visit, or released from the regimen."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    kind: FollowupKind
    worker_id: Ref | None = None


class Cohort(msgspec.Struct, frozen=True, kw_only=True):
    """A key-population roster change; ``cohort`` must be a name the policy defines."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    cohort: Name
    district: Name
    active: bool


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """An operator handling an alert; keyed by ``subject`` so it reaches the owning partition."""

    event_id: EventId
    occurred_at: Instant
    alert_id: Ref
    subject: Ref
    action: ActionKind
    operator_id: Ref
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    # *v1.2* the operator an ``assign`` hands the alert to (required there, checked after
    # decoding); on ack and resolve it is validated like any id and otherwise ignored
    assignee: Ref | None = None


class Population(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A roster entry (常住人口, 流动人员); the latest per person counts. Compacted."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    district: Name
    grid: Grid | None = None
    status: RosterStatus


class Round(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A testing round; ``closes_at`` must be after ``opens_at`` (checked after
    decoding). ``districts`` = ``["*"]`` means every district."""

    event_id: EventId
    occurred_at: Instant
    round_id: RoundId
    opens_at: Instant
    closes_at: Instant
    districts: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=10_000)]
    cohort: Name | None = None


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A person entering the city at a road checkpoint or station (查验关)."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    checkpoint_id: Ref
    district: Name
    role: Role
    proof_sampled_at: Instant | None  # required, null when no proof is shown
    visited: Annotated[list[County], msgspec.Meta(max_length=1_000)]
    vehicle_id: Name | None = None


class Area(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A county's risk level, effective from ``occurred_at``. Keyed by ``county``."""

    event_id: EventId
    occurred_at: Instant
    county: County
    level: Level


class Clinic(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.1* A sentinel visit (哨点): a fever or respiratory patient, or an antipyretic sold."""

    event_id: EventId
    occurred_at: Instant
    person_id: PersonId
    facility_id: Ref
    facility_kind: FacilityKind
    district: Name
    reason: VisitReason


class Inspection(msgspec.Struct, frozen=True, kw_only=True):
    """*v1.2* A supervision record about a unit (督导检查): a finding, its rectification (整改)
    or a look-back recheck (回头看). A ``finding`` needs ``category`` and ``severity``, a
    ``recheck`` needs ``result`` (checked after decoding); a field the record does not use is
    validated like the others and otherwise ignored. Keyed by ``unit_id``."""

    event_id: EventId
    occurred_at: Instant
    unit_id: UnitId
    unit_kind: UnitKind
    district: Name
    record: InspectionRecord
    finding_id: FindingId
    category: Category | None = None
    severity: Severity | None = None
    result: RecheckResult | None = None
    inspector_id: PersonId | None = None


Event = (Sampling | Lab | Travel | Followup | Cohort | Action | Population | Round | Checkpoint
         | Area | Clinic | Inspection)

MODELS: Final[dict[str, type[Event]]] = {
    "sampling": Sampling,
    "lab": Lab,
    "travel": Travel,
    "followup": Followup,
    "cohort": Cohort,
    "action": Action,
    "population": Population,
    "round": Round,
    "checkpoint": Checkpoint,
    "area": Area,
    "clinic": Clinic,
    "inspection": Inspection,
}
INPUT_TOPICS: Final = tuple(MODELS)

REQUIRED_WHEN: Final[dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]]] = {
    "lab": (("status", "reported", ("result",)),),
    "action": (("action", "assign", ("assignee",)),),
    "inspection": (("record", "finding", ("category", "severity")),
                   ("record", "recheck", ("result",))),
}
"""Optional fields a value of another field makes required, per topic: (field, value,
required fields). Missing (or null) there, the event is ``missing_field``; the decoder, the
JSON Schemas' ``if``/``then`` and the docs all read this one table."""

# Fields of names and ids that people read and group by, and free text: checked by
# ``text.text_problem`` after decoding (no control or format characters; names not blank).
NAME_FIELDS: Final = frozenset({"event_id", "district", "origin", "cohort", "reason",
                                "vehicle_id"})  # a round's districts too (decode.py)
FREE_TEXT_FIELDS: Final = frozenset({"note"})

KEY_FIELD: Final[dict[str, str]] = {
    "sampling": "tube_id",
    "lab": "tube_id",
    "travel": "person_id",
    "followup": "person_id",
    "cohort": "person_id",
    "action": "subject",
    "population": "person_id",
    "round": "round_id",
    "checkpoint": "person_id",
    "area": "county",
    "clinic": "person_id",
    "inspection": "unit_id",
}
"""The message key of each input topic (CONTRACT.md §3)."""
