"""Generate the JSON Schema files and the AsyncAPI document from the msgspec models.

The models in ``events.py`` and ``outputs.py`` are the single source of truth; the files under
``schemas/jsonschema/`` and ``schemas/asyncapi.yaml`` are what producers and downstream teams
read. Generating them (and checking them in CI with ``--check``) keeps the two from drifting::

    python -m closedloop.schemas.generate           # rewrite the files
    python -m closedloop.schemas.generate --check   # exit 1 with a diff summary if stale

The YAML is written by a small emitter here rather than PyYAML: output is then byte-for-byte
stable whatever PyYAML version (if any) is installed, and this module needs only msgspec.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from closedloop.schemas.decode import NO_RECEIPT_HEADER, RECEIVED_AT_HEADER, STRING_FIELDS
from closedloop.schemas.events import (
    FREE_TEXT_FIELDS,
    MODELS,
    NAME_FIELDS,
    PSEUDONYM_PATTERN,
    REF_PATTERN,
    REQUIRED_WHEN,
)
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    Escalation,
    PersonStatus,
    RoundReport,
    UnitStatus,
)
from closedloop.schemas.plausible import OTHER_TIMES
from closedloop.schemas.policy import default_policy
from closedloop.streams.engine.topology import (
    DEADLETTER_RETENTION_DAYS,
    INPUT_RETENTION_DAYS,
    INTERNAL_RETENTION_DAYS,
    OUTPUT_RETENTION_DAYS,
    TOPOLOGY,
)

__all__ = [
    "SCHEMA_NAMES",
    "asyncapi_document",
    "check",
    "json_schemas",
    "main",
    "render",
    "schema_id",
    "to_yaml",
    "write",
]

HERE: Final = Path(__file__).resolve().parent
JSONSCHEMA_DIR: Final = "jsonschema"
ASYNCAPI_FILE: Final = "asyncapi.yaml"
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
ID_BASE: Final = "https://closedloop.example/schemas/"
PREFIX: Final = "closedloop"
BINDING_VERSION: Final = "0.5.0"

# RFC 3339 date-time. JSON Schema's ``format`` is only an annotation in draft 2020-12 (most
# validators do not assert it by default), so the offset rule is also spelled as a pattern.
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# CONTRACT.md §2 (v1.1): a string holding a resident ID or a mobile number anywhere, the
# run not part of a longer run of digits. (Without lookarounds, which not every validator
# has; the decoder also reads the string NFKC-normalised, which a pattern cannot say.)
RAW_IDENTIFIER_PATTERN: Final = (
    r"(?:^|[^0-9])(?:0086)?1[0-9]{10}(?:[^0-9]|$)|\+861[0-9]{10}(?:[^0-9]|$)"
    r"|(?:^|[^0-9])[0-9]{17}(?:[0-9](?:[^0-9]|$)|[Xx])"
)
# Rules of schemas/VALIDATION.md ("Edge cases") that a draft 2020-12 pattern cannot say.
TEXT_NOTES: Final = {
    "name": "not blank, no white space at either end, no control or format character "
    "(newline, U+202E ...); else reason invalid_value",
    "free": "no control or format character besides tab and line breaks; else reason "
    "invalid_value",
}
# CONTRACT.md §1 (v1.1): implausible times, which no pattern can say.
IMPLAUSIBLE_NOTES: Final = {
    "occurred_at": "before 2000-01-01T00:00:00Z or later than the event's receipt plus "
    "max_clock_skew is rejected (reason implausible_time)",
    "other": "more than 366 days before or after occurred_at is rejected "
    "(reason implausible_time)",
}

DAY_MS: Final = 86_400_000
PARTITIONS: Final = 12
REPLICAS: Final = 3

OUTPUT_MODELS: Final[dict[str, type[msgspec.Struct]]] = {
    "alert": Alert,
    "escalation": Escalation,
    "person-status": PersonStatus,
    "daily-report": DailyReport,
    "deadletter": DeadLetter,
    "round-report": RoundReport,
    "unit-status": UnitStatus,
}
SCHEMA_NAMES: Final = (*MODELS, "envelope", *OUTPUT_MODELS)

TITLES: Final[dict[str, str]] = {
    "sampling": "Sampling event",
    "lab": "Lab event",
    "travel": "Travel push event",
    "followup": "Follow-up event",
    "cohort": "Cohort roster event",
    "action": "Operator action event",
    "population": "Population roster event",
    "round": "Testing round event",
    "checkpoint": "Entry checkpoint event",
    "area": "Risk area event",
    "clinic": "Sentinel visit event",
    "inspection": "Supervision record event",
    "envelope": "Replay envelope",
    "alert": "Alert",
    "escalation": "Escalated alert",
    "person-status": "Person status",
    "daily-report": "Daily closure report",
    "deadletter": "Dead letter",
    "round-report": "Testing round report",
    "unit-status": "Supervised unit status",
}

DESCRIPTIONS: Final[dict[str, str]] = {
    "sampling": "A swab taken; occurred_at is the collection time. pool_size 1 is a single "
    "tube, 10 a 10-in-1 pool. The message key is tube_id.",
    "lab": "A tube's progress at a lab: received, then reported with a result. result is "
    "required when status is reported. The message key is tube_id.",
    "travel": "A travel record pushed by higher authorities (上级推送); occurred_at is the "
    "push time. The risk level selects the regimen of the policy. The message key is "
    "person_id.",
    "followup": "A grid worker's record: located (the first clearance), a daily visit, or "
    "released from the regimen. The message key is person_id.",
    "cohort": "A key-population roster change (重点人群). cohort must be a name the policy "
    "defines; active false ends the membership. The message key is person_id.",
    "action": "An operator acknowledging or resolving an alert, or (v1.2) assigning it to "
    "another operator (assignee; an assignment changes no escalation). subject is the alert's "
    "subject, which is also the message key, so the action reaches the partition that owns "
    "the alert.",
    "population": "v1.1. The city's roster (常住人口, 流动人员): per person, the record with the "
    "latest occurred_at (ties: the larger event_id) at an instant is their entry then; status "
    "left takes them off. Compacted. The message key is person_id.",
    "round": "v1.1. A testing round (区域核酸, 重点人群应检尽检): everyone on the roster in its "
    "districts (districts [\"*\"]: every district), or with cohort every active member of "
    "that cohort, must be sampled in [opens_at, closes_at]. closes_at must be after "
    "opens_at (else reason invalid_value). A later record with the same round_id replaces it "
    "until it closes. The message key is round_id.",
    "checkpoint": "v1.1. A person entering the city at a road checkpoint or station (查验关): "
    "the negative test shown (proof_sampled_at, null when none), the counties stayed in "
    "during the last 7 days. The message key is person_id.",
    "area": "v1.1. A county's risk level (疫情发生地), effective from occurred_at; a county "
    "with no record is low. The message key is county.",
    "clinic": "v1.1. A sentinel visit (哨点): a fever or respiratory patient at a hospital or "
    "clinic, or an antipyretic bought at a pharmacy; a sampling is due within the policy's "
    "sentinel_test_within of the facility kind. The message key is person_id.",
    "inspection": "v1.2. A supervision record about a unit (督导检查: 明察暗访, 整改, 回头看): a "
    "finding (with category and severity), its rectification, or a look-back recheck (with "
    "result pass or fail), matched by (unit_id, finding_id) in event time. A finding must be "
    "rectified within the policy's rectify_within of its severity, and a rectification "
    "rechecked within recheck_within; a failed recheck opens the finding again. The message "
    "key is unit_id.",
    "envelope": "One line of a replay file (JSON Lines) for `closedloop replay`: the input "
    "topic's short name and the event as it would be the Kafka message value.",
    "alert": "One alert. alert_id is stable: the same kind, subject and due_at give the same "
    "id on every run, and no alert is emitted twice for one (kind, subject, due_at). "
    "raised_at is event time. The message key is subject.",
    "escalation": "An alert nobody acknowledged, resolved or satisfied within the policy's "
    "escalation.after (default 2 h): the alert object with kind escalated and details "
    "{alert_id, alert_kind, level}; level 2 at raised_at + after, level 3 (city command) one "
    "more window later, then no more. alert_id is stable (kind escalated, subject, due_at). "
    "Published on its own topic, never on alerts, whose kinds are the contract's. The "
    "message key is subject.",
    "person-status": "A person's current state for downstream services, published to a "
    "compacted topic keyed by person_id: the latest record per person is the state.",
    "unit-status": "v1.2. A supervised unit's findings as their records stand, for the "
    "ledger: each finding's district, category, severity, unit kind, found_at, closed_at "
    "(the passed recheck that closed it, or null: open) and its rectifications and rechecks "
    "in event time. Published to a compacted topic keyed by unit_id when an inspection "
    "record or a lapse changed the unit. Not a contract topic (like escalations).",
    "daily-report": "The daily closure report (日清日结) of one district for one local day, "
    "published at the policy's daily cut-off. The message key is district.",
    "round-report": "v1.1. A testing round's report: progress every round_progress_every "
    "while it is open, close at closes_at, final at closes_at + catchup_within. One row per "
    "district with anyone in scope or not on the roster, sorted by district. The message "
    "key is round_id.",
    "deadletter": "A rejected input: a machine-readable reason, a human message, where it "
    "came from (topic, partition and offset, or file line) and the original bytes, with raw "
    "identifiers replaced by [redacted]. original_encoding is base64 when the bytes were not "
    "UTF-8.",
}

# Field notes that say more than the model's generic annotation.
FIELD_NOTES: Final[dict[str, dict[str, str]]] = {
    "sampling": {
        "occurred_at": "collection time, RFC 3339 with an offset",
        "pool_size": "tubes pooled in this tube: 1 = single tube, 10 = 10-in-1",
        "site_lat": "sampling site latitude in degrees (used for identity checks)",
        "site_lon": "sampling site longitude in degrees (used for identity checks)",
    },
    "lab": {"result": "required when status is reported"},
    "travel": {
        "occurred_at": "push time, RFC 3339 with an offset",
        "arrived_at": "arrival time; its local date is day 1 of the regimen",
    },
    "cohort": {"cohort": "a cohort name the policy defines"},
    "action": {
        "subject": "the alert's subject (person_id, tube_id, source, lab_id or unit_id); the "
        "message key",
        "assignee": "v1.2: the operator the alert is assigned to; required when action is "
        "assign, validated and otherwise ignored for ack and resolve",
    },
    "inspection": {
        "occurred_at": "when the unit was inspected, rectified or rechecked, RFC 3339 with an "
        "offset",
        "finding_id": "the finding this record is about; records are matched by (unit_id, "
        "finding_id)",
        "category": "required when record is finding",
        "severity": "required when record is finding; selects rectify_within",
        "result": "required when record is recheck; fail opens the finding again",
        "inspector_id": "a pseudonym, as person_id",
    },
}

# Output fields that carry an instant or a local date (the models keep them as strings).
OUTPUT_TIMESTAMPS: Final = frozenset(
    {
        "due_at", "raised_at", "updated_at", "arrived_at", "pushed_at", "ends_at",
        "located_at", "last_cleared_at", "released_at", "last_sampled_at",
    }
)
OUTPUT_DATES: Final = frozenset({"date"})


def schema_id(name: str) -> str:
    """The ``$id`` of a schema: versioned like its topic, so v2 can live beside v1."""
    return f"{ID_BASE}{name}.v1.json"


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _pin_timestamps(node: dict[str, Any]) -> None:
    if node.get("format") == "date-time" and node.get("type") == "string":
        node.setdefault("pattern", RFC3339_PATTERN)


def _ecma_end(node: dict[str, Any]) -> None:
    """Python's ``\\Z`` (see ``events.exact``) is ECMA-262's ``$`` outside multiline mode."""
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.endswith(r"\Z"):
        node["pattern"] = pattern.removesuffix(r"\Z") + "$"


def _nullable(schema: dict[str, Any]) -> bool:
    return {"type": "null"} in schema.get("anyOf", [])


def _model_schema(name: str, model: type[msgspec.Struct]) -> dict[str, Any]:
    """msgspec's schema for ``model``, with its own definition lifted to the root."""
    raw = msgspec.json.schema(model)
    _walk(raw, _ecma_end)
    defs: dict[str, Any] = dict(raw["$defs"])
    own = defs.pop(model.__name__)
    root: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": schema_id(name),
        "title": TITLES[name],
        "description": DESCRIPTIONS[name],
        "type": "object",
        "properties": own["properties"],
        "required": own.get("required", []),
    }
    if defs:
        root["$defs"] = defs  # "#/$defs/X" refs of nested models still resolve from the root
    if f'"#/$defs/{model.__name__}"' in json.dumps(root):
        raise ValueError(f"{model.__name__} refers to itself: lift it to the root differently")
    return root


def _event_schema(name: str) -> dict[str, Any]:
    root = _model_schema(name, MODELS[name])
    properties: dict[str, Any] = root["properties"]
    for field, note in FIELD_NOTES.get(name, {}).items():
        properties[field]["description"] = note
    for field in STRING_FIELDS[MODELS[name]]:
        if field in properties:
            properties[field]["not"] = {
                "description": "a string holding a raw resident ID or mobile number "
                "anywhere is rejected (reason raw_identifier)",
                "type": "string",
                "pattern": RAW_IDENTIFIER_PATTERN,
            }
    for field in properties:
        if field in NAME_FIELDS or field in FREE_TEXT_FIELDS:
            rule = TEXT_NOTES["free" if field in FREE_TEXT_FIELDS else "name"]
            note = properties[field].get("description")
            properties[field]["description"] = f"{note}; {rule}" if note else rule
    _walk(root, _pin_timestamps)
    for field in ("occurred_at", *OTHER_TIMES[MODELS[name]]):
        rule = IMPLAUSIBLE_NOTES["occurred_at" if field == "occurred_at" else "other"]
        note = properties[field].get("description")
        properties[field]["description"] = f"{note}; {rule}" if note else rule
    conditions = [_required_when(properties, *rule) for rule in REQUIRED_WHEN.get(name, ())]
    if len(conditions) == 1:
        root.update(conditions[0])
    elif conditions:
        root["allOf"] = conditions
    if name == "sampling":  # half a coordinate is missing_field (VALIDATION.md)
        root["dependentRequired"] = {"site_lat": ["site_lon"], "site_lon": ["site_lat"]}
    if name == "cohort":
        properties["cohort"]["examples"] = sorted(default_policy().cohorts)
    return root


def _required_when(properties: dict[str, Any], switch: str, value: str,
                   fields: tuple[str, ...]) -> dict[str, Any]:
    """``if``/``then`` for fields that ``switch`` = ``value`` requires (not null either)."""
    return {
        "if": {"properties": {switch: {"const": value}}, "required": [switch]},
        "then": {
            "properties": {field: _not_null(properties[field]) for field in fields},
            "required": list(fields),
        },
    }


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The value branch of a nullable field's schema (``anyOf`` [value, null])."""
    branches = [b for b in schema.get("anyOf", [schema]) if b != {"type": "null"}]
    (branch,) = branches
    if set(branch) == {"type", "enum"}:
        return {"enum": branch["enum"]}  # an enum says its type
    return dict(branch)


def _output_schema(name: str) -> dict[str, Any]:
    root = _model_schema(name, OUTPUT_MODELS[name])

    def annotate(node: dict[str, Any]) -> None:
        for field, schema in node.get("properties", {}).items():
            fmt = "date-time" if field in OUTPUT_TIMESTAMPS else None
            fmt = "date" if field in OUTPUT_DATES else fmt
            if fmt is None:
                continue
            targets = schema["anyOf"] if _nullable(schema) else [schema]
            for target in targets:
                if target.get("type") == "string":
                    target["format"] = fmt

    _walk(root, annotate)
    return root


def _envelope_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": schema_id("envelope"),
        "title": TITLES["envelope"],
        "description": DESCRIPTIONS["envelope"],
        "type": "object",
        "properties": {
            "topic": {"description": "the input topic's short name", "enum": list(MODELS)},
            "received_at": {
                "description": "v1.2, optional: when the platform received the record (a "
                "file exported from Kafka carries the record timestamps); replay takes it as "
                "the line's receipt, and the record's entry lag is known only with it. More "
                "than max_clock_skew after the run's own receipt, or more than "
                "max_clock_skew before the event's occurred_at, is rejected (reason "
                "implausible_time); null is the same as leaving it out",
                "anyOf": [
                    {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
                    {"type": "null"},
                ],
            },
            "value": {"description": "the event, validated against its topic's schema"},
        },
        "required": ["topic", "value"],
        "allOf": [
            {
                "if": {"properties": {"topic": {"const": topic}}, "required": ["topic"]},
                "then": {"properties": {"value": {"$ref": f"{topic}.v1.json"}}},
            }
            for topic in MODELS
        ],
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema document by short name, in a fixed order."""
    schemas: dict[str, dict[str, Any]] = {name: _event_schema(name) for name in MODELS}
    schemas["envelope"] = _envelope_schema()
    schemas.update({name: _output_schema(name) for name in OUTPUT_MODELS})
    return schemas


# --- AsyncAPI -----------------------------------------------------------------------------

KEY_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "tube_id": {"type": "string", "pattern": REF_PATTERN, "description": "tube_id, UTF-8"},
    "person_id": {
        "type": "string",
        "pattern": PSEUDONYM_PATTERN,
        "description": "person_id (a pseudonym), UTF-8",
    },
    "subject": {
        "type": "string",
        "pattern": REF_PATTERN,
        "description": "subject: the alert's person_id or tube_id, UTF-8",
    },
    "district": {"type": "string", "minLength": 1, "description": "district, UTF-8"},
    "round_id": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$",
                 "description": "round_id, UTF-8"},
    "county": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,32}$",
               "description": "county, UTF-8"},
    "unit_id": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$",
                "description": "unit_id, UTF-8"},
}

RECEIPT_HEADER: Final[dict[str, Any]] = {
    "type": "object",
    "description": "v1.2: Kafka record headers of an input record",
    "properties": {
        RECEIVED_AT_HEADER: {
            "type": "string",
            "description": "when the platform received the record (RFC 3339 with an offset), "
            f"or {NO_RECEIPT_HEADER.decode()} when it has no receipt of its own (then its "
            "receipt is the record timestamp and its entry lag is unknown); without the "
            "header the receipt is the record timestamp, capped at now. `closedloop produce` "
            "sets it from the replay line's received_at. More than max_clock_skew after the "
            "worker's now is rejected (reason implausible_time)",
            "pattern": f"^{NO_RECEIPT_HEADER.decode()}$|{RFC3339_PATTERN}",
        },
    },
}

INPUT_RETENTION_WHY: Final = (
    f"Retention {INPUT_RETENTION_DAYS} days: health data is kept no longer than needed; "
    "30 days outlasts the longest regimen (7 days) with room to replay a month after a fix. "
    "The ledger, not Kafka, is the long-term record."
)
COMPACT_WHY: Final = (
    "Compacted: the latest record per key is the current state, so a rebuilt consumer reads "
    "state rather than history; retention.ms does not apply to a compact-only topic, and a "
    "tombstone (null value) is kept for delete.retention.ms (1 day) before it is removed."
)
OUTPUT_RETENTION_WHY: Final = (
    f"Retention {OUTPUT_RETENTION_DAYS} days: long enough for a quarter's review and audit of "
    "how lapses were handled; the ledger keeps the long-term record."
)
DEADLETTER_RETENTION_WHY: Final = (
    f"Retention {DEADLETTER_RETENTION_DAYS} days: time to fix a producer and resubmit, but "
    "short because rejected input is health data (raw identifiers are already redacted)."
)
INTERNAL_RETENTION_WHY: Final = (
    f"Retention {INTERNAL_RETENTION_DAYS} days: derived data, re-derivable from the input "
    "topics; a week covers a long consumer outage."
)
COPARTITION_NOTE: Final = (
    "Every topic keyed by person_id (travel, followup, cohort, person-tests, person-status) "
    "must have the same partition count: the person loop joins them by partition."
)


OUTPUT_SCHEMAS: Final = {"alerts": "alert", "escalations": "escalation"}
"""An output topic's schema where its name is not the topic's."""


def channel_specs() -> list[dict[str, Any]]:
    """One spec per topic of the topology (the engine's, which also declares them on Kafka):
    name, key field, cleanup policy, retention and prose."""
    specs: list[dict[str, Any]] = []
    for topic in TOPOLOGY.topics:
        spec: dict[str, Any] = {
            "name": topic.name,
            "key": topic.key,
            "compact": topic.compact,
            "retention_days": topic.retention_days,
        }
        if topic.role == "input":
            spec.update(schema=topic.name, direction="receive", description=(
                f"{DESCRIPTIONS[topic.name]}\n"
                + (COMPACT_WHY if topic.compact else INPUT_RETENTION_WHY)))
        elif topic.role == "internal":
            note = f"\n{COPARTITION_NOTE}" if topic.key == "person_id" else ""
            spec.update(schema=None, title=topic.title, direction="both",
                        description=f"{topic.about}\n{INTERNAL_RETENTION_WHY}{note}")
        else:
            schema = OUTPUT_SCHEMAS.get(topic.name, topic.name)
            why = (COMPACT_WHY if topic.compact else DEADLETTER_RETENTION_WHY
                   if topic.name == "deadletter" else OUTPUT_RETENTION_WHY)
            spec.update(schema=schema, direction="send",
                        description=f"{DESCRIPTIONS[schema]}\n{why}")
        specs.append(spec)
    return specs


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part.capitalize() for part in rest)


def _key_schema(key: str | None, channel: str) -> dict[str, Any]:
    if key is None:
        where = ("sent to each partition explicitly" if channel == "tube-ticks"
                 else "dead letters spread over partitions")
        return {"type": "null", "description": f"no key: {where}"}
    return dict(KEY_SCHEMAS[key])


def _channel_bindings(spec: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": ["compact" if spec["compact"] else "delete"]}
    if spec["retention_days"] is not None:
        config["retention.ms"] = spec["retention_days"] * DAY_MS
    else:
        config["delete.retention.ms"] = DAY_MS
    return {
        "kafka": {
            "partitions": PARTITIONS,
            "replicas": REPLICAS,
            "topicConfiguration": config,
            "bindingVersion": BINDING_VERSION,
        }
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 description of every topic of CONTRACT.md."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in channel_specs():
        name: str = spec["name"]
        ident = _camel(name)
        if spec["schema"] is None:
            payload: dict[str, Any] = {
                "type": "object",
                "description": "internal record of the engine (see the channel description)",
            }
        else:
            payload = {"$ref": f"./{JSONSCHEMA_DIR}/{spec['schema']}.json"}
        key = spec["key"]
        messages[ident] = {
            "name": name,
            "title": TITLES.get(spec["schema"] or "", spec.get("title", "Internal record")),
            "contentType": "application/json",
            **({"headers": RECEIPT_HEADER} if name in MODELS else {}),
            "payload": payload,
            "bindings": {
                "kafka": {"key": _key_schema(key, name), "bindingVersion": BINDING_VERSION}
            },
        }
        channels[ident] = {
            "address": f"{PREFIX}.{name}.v1",
            "title": name,
            "description": spec["description"],
            "messages": {ident: {"$ref": f"#/components/messages/{ident}"}},
            "bindings": _channel_bindings(spec),
        }
        actions = ("send", "receive") if spec["direction"] == "both" else (spec["direction"],)
        for action in actions:
            operations[f"{action}{ident[0].upper()}{ident[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{ident}"},
                "messages": [{"$ref": f"#/channels/{ident}/messages/{ident}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "closedloop",
            "version": "1.2.0",
            "description": "Closed-loop epidemic test tracking (CONTRACT.md v1.2). Topics are "
            f"`{{prefix}}.{{name}}.v1` with prefix `{PREFIX}` by default; message values are "
            "JSON (payload schemas are JSON Schema draft 2020-12 files beside this "
            "document); message keys are UTF-8 strings.\n"
            f"Partitions: {PARTITIONS} by default. Replicas: {REPLICAS} in production (with "
            "min.insync.replicas=2); the single-node development broker uses 1.\n"
            "Retention is chosen for health data: inputs 30 days, alerts, escalations and "
            "daily reports 90 days, dead letters 14 days, the internal person-tests topic "
            "7 days; roster and person status are compacted state. Generated by "
            "`python -m closedloop.schemas.generate`; do not edit by hand.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "kafka.closedloop.example:9092",
                "protocol": "kafka",
                "description": "The production cluster; the worker reads its bootstrap "
                "servers from CLOSEDLOOP_KAFKA.",
            },
            "development": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The single KRaft node of deploy/kafka (replication factor 1).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# --- deterministic YAML -------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z$][A-Za-z0-9_./$-]*$")
_YAML_WORDS: Final = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
            return value
        # A JSON string is a valid YAML double-quoted scalar.
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _block_text(value: str, pad: str) -> list[str] | None:
    """A multi-line string as a literal block (``|-``) when that keeps it exact."""
    lines = value.split("\n")
    if len(lines) < 2 or not lines[0] or lines[0][0] == " " or value.endswith("\n"):
        return None
    if any(line != line.rstrip() or not line.isprintable() or not line for line in lines):
        return None
    return ["|-", *(f"{pad}  {line}" for line in lines)]


def _yaml_lines(node: Any, indent: int) -> Iterator[str]:
    pad = " " * indent
    if isinstance(node, dict):
        for key, value in node.items():
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(value, dict | list) and value:
                yield head
                yield from _yaml_lines(value, indent + 2)
            elif isinstance(value, str) and (block := _block_text(value, pad)) is not None:
                yield f"{head} {block[0]}"
                yield from block[1:]
            elif isinstance(value, dict):
                yield f"{head} {{}}"
            elif isinstance(value, list):
                yield f"{head} []"
            else:
                yield f"{head} {_scalar(value)}"
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list) and item:
                inner = list(_yaml_lines(item, indent + 2))
                yield f"{pad}- {inner[0][indent + 2:]}"
                yield from inner[1:]
            elif isinstance(item, dict):
                yield f"{pad}- {{}}"
            elif isinstance(item, list):
                yield f"{pad}- []"
            else:
                yield f"{pad}- {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(node)}"


def to_yaml(document: dict[str, Any]) -> str:
    """Block-style YAML of plain data; the same input always gives the same text."""
    return "\n".join(_yaml_lines(document, 0)) + "\n"


# --- files --------------------------------------------------------------------------------

HEADER: Final = (
    "# Generated by `python -m closedloop.schemas.generate` from the models; do not edit.\n"
)


def render() -> dict[str, str]:
    """Every generated file's text, by path relative to ``schemas/``."""
    files = {
        f"{JSONSCHEMA_DIR}/{name}.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in json_schemas().items()
    }
    files[ASYNCAPI_FILE] = HEADER + to_yaml(asyncapi_document())
    return files


def write(root: Path = HERE) -> list[Path]:
    """Write the generated files under ``root``; returns the paths that changed."""
    changed: list[Path] = []
    for relative, text in render().items():
        path = root / relative
        if path.exists() and path.read_text("utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        changed.append(path)
    return changed


def check(root: Path = HERE, context_lines: int = 12) -> list[str]:
    """Differences between the files under ``root`` and the models; empty when in sync."""
    problems: list[str] = []
    expected = render()
    for relative, text in expected.items():
        path = root / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
            continue
        actual = path.read_text("utf-8")
        if actual != text:
            diff = list(
                difflib.unified_diff(
                    actual.splitlines(), text.splitlines(), f"{relative} (checked in)",
                    f"{relative} (from the models)", n=1, lineterm="",
                )
            )
            shown = "\n".join(diff[:context_lines])
            hidden = len(diff) - context_lines
            more = f"\n... {hidden} more diff lines" if hidden > 0 else ""
            problems.append(f"{relative}: differs from the models\n{shown}{more}")
    directory = root / JSONSCHEMA_DIR
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            relative = f"{JSONSCHEMA_DIR}/{path.name}"
            if relative not in expected:
                problems.append(f"{relative}: not generated by any model (stale?)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m closedloop.schemas.generate",
        description="Generate JSON Schemas and the AsyncAPI document from the models.",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the checked-in files are out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                f"{len(problems)} generated file(s) out of date; run "
                "`python -m closedloop.schemas.generate`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(render())} generated files are up to date")
        return 0
    changed = write()
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
