"""The checked-in JSON Schemas and AsyncAPI document: in sync with the models, and right.

Drift fails here first (regenerate with ``python -m closedloop.schemas.generate``). Then the
schemas are used as a producer would use them: valid events of every topic pass, bad ones
fail, and each valid event is one the project's own decoder accepts too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from helpers import v11_events, v12_events
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from closedloop.schemas import generate
from closedloop.schemas.decode import Rejection, validate_event
from closedloop.schemas.events import MODELS
from closedloop.schemas.outputs import (
    Alert,
    DailyReport,
    DeadLetter,
    Escalation,
    PersonStatus,
    PushStatus,
)
from closedloop.schemas.policy import default_policy

SCHEMA_DIR = Path(generate.__file__).resolve().parent
JSONSCHEMA_DIR = SCHEMA_DIR / "jsonschema"
ASYNCAPI = SCHEMA_DIR / "asyncapi.yaml"
PERSON = "pz:c4ca4238a0b923820dcc509a6f75849b"

OUTPUT_TOPICS = ("alerts", "escalations", "person-status", "daily-report", "deadletter",
                 "round-report", "unit-status")
INTERNAL_TOPICS = ("person-tests", "report-parts", "tube-ticks", "unit-ticks", "entry-parts")
ALL_TOPICS = {f"closedloop.{name}.v1" for name in (*MODELS, *OUTPUT_TOPICS, *INTERNAL_TOPICS)}


def load_schemas() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text("utf-8")) for path in JSONSCHEMA_DIR.glob("*.json")
    }


SCHEMAS = load_schemas()
REGISTRY: Registry[Any] = Registry().with_resources(
    (schema["$id"], DRAFT202012.create_resource(schema)) for schema in SCHEMAS.values()
)


def validator(name: str) -> Draft202012Validator:
    # No format_checker: in draft 2020-12 "format" is an annotation unless a validator opts
    # in, and "date-time" checking would need the optional rfc3339-validator package. The
    # generator therefore also spells the offset rule as a "pattern", which every validator
    # enforces; that is what the naive-timestamp cases below exercise.
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY)


def is_valid(name: str, instance: Any) -> bool:
    return bool(validator(name).is_valid(instance))


VALID_EVENTS: dict[str, dict[str, Any]] = {
    **v11_events(PERSON),
    **v12_events(PERSON),
    "sampling": {
        "event_id": "smp-1",
        "occurred_at": "2022-09-06T09:30:00+08:00",
        "person_id": PERSON,
        "tube_id": "T20220906-0001",
        "site_id": "site-hd-0042",
        "district": "haidian",
        "pool_size": 10,
        "site_lat": 39.959,
        "site_lon": 116.298,
    },
    "lab": {
        "event_id": "lab-1",
        "occurred_at": "2022-09-06T15:00:00Z",
        "tube_id": "T20220906-0001",
        "lab_id": "lab-7",
        "status": "reported",
        "result": "positive",
    },
    "travel": {
        "event_id": "trv-1",
        "occurred_at": "2022-09-06T08:00:00.250+08:00",
        "person_id": PERSON,
        "district": "chaoyang",
        "arrived_at": "2022-09-05T21:40:00+08:00",
        "origin": "shanghai",
        "risk": "outside_province",
    },
    "followup": {
        "event_id": "fu-1",
        "occurred_at": "2022-09-06T09:10:00+08:00",
        "person_id": PERSON,
        "kind": "visit",
        "worker_id": None,
    },
    "cohort": {
        "event_id": "co-1",
        "occurred_at": "2022-09-01T08:00:00+08:00",
        "person_id": PERSON,
        "cohort": "cold_chain",
        "district": "haidian",
        "active": False,
        "roster_source": "district-hr",  # unknown extra fields are allowed
    },
    "action": {
        "event_id": "act-1",
        "occurred_at": "2022-09-06T12:00:00+08:00",
        "alert_id": "al-3c59dc048e885024",
        "subject": "T20220906-0001",
        "action": "resolve",
        "operator_id": "op-17",
    },
}


def output_samples() -> dict[str, dict[str, Any]]:
    """One record per output, built with the models themselves and encoded as they would be."""
    alert = Alert(
        alert_id="al-3c59dc048e885024", kind="unlocated", subject=PERSON, person_id=PERSON,
        tube_id=None, district="chaoyang", due_at="2022-09-06T10:00:00+08:00",
        raised_at="2022-09-06T10:00:00+08:00", details={"pushed_at": "2022-09-06T08:00:00+08:00"},
    )
    status = PersonStatus(
        person_id=PERSON, district="chaoyang", updated_at="2022-09-06T10:00:00+08:00",
        under_control=False,
        push=PushStatus(
            risk="medium", regimen="home_quarantine", arrived_at="2022-09-05T21:40:00+08:00",
            pushed_at="2022-09-06T08:00:00+08:00", ends_at="2022-09-12T00:00:00+08:00",
            located_at=None, last_cleared_at=None, released_at=None,
        ),
        cohorts=["courier"], open_requirements=["located"], last_sampled_at=None,
        last_result=None,
    )
    report = DailyReport(
        district="chaoyang", date="2022-09-06", pushed=12, located=11, under_control=11,
        followup_overdue_open=1, tests_missed=2, positives=0,
    )
    escalation = Escalation(
        alert_id="al-9f0a1c2b3d4e5f60", kind="escalated", subject=PERSON, person_id=PERSON,
        tube_id=None, district="chaoyang", due_at="2022-09-06T12:00:00+08:00",
        raised_at="2022-09-06T12:00:00+08:00",
        details={"alert_id": alert.alert_id, "alert_kind": "unlocated", "level": 2},
    )
    letter = DeadLetter(
        reason="raw_identifier", message="person_id: looks like a raw resident ID",
        topic="closedloop.travel.v1", partition=3, offset=42, line=None,
        original='{"person_id":"[redacted]"}', original_encoding="utf-8",
    )
    return {
        name: msgspec.to_builtins(record)
        for name, record in (
            ("alert", alert), ("escalation", escalation), ("person-status", status),
            ("daily-report", report), ("deadletter", letter),
        )
    }


# --- drift --------------------------------------------------------------------


def test_checked_in_files_match_the_models() -> None:
    problems = generate.check()
    assert problems == [], "\n".join(problems) + "\nrun: python -m closedloop.schemas.generate"


def test_check_reports_a_drifted_file(tmp_path: Path) -> None:
    shutil.copytree(JSONSCHEMA_DIR, tmp_path / "jsonschema")
    shutil.copy(ASYNCAPI, tmp_path / "asyncapi.yaml")
    lab = tmp_path / "jsonschema" / "lab.json"
    lab.write_text(lab.read_text("utf-8").replace('"reported"', '"done"'), "utf-8")
    (tmp_path / "jsonschema" / "old.json").write_text("{}", "utf-8")
    (tmp_path / "asyncapi.yaml").unlink()
    problems = generate.check(tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "jsonschema/lab.json", "asyncapi.yaml", "jsonschema/old.json"
    ]
    assert '+        "const": "reported"' in problems[0]


def test_check_command_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_every_schema_is_a_valid_2020_12_schema_with_an_id() -> None:
    assert set(SCHEMAS) == set(generate.SCHEMA_NAMES)
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://closedloop.example/schemas/{name}.v1.json"
        assert schema["title"]
        assert schema["description"]


# --- valid events pass, in the schema and in the decoder alike ----------------


@pytest.mark.parametrize("topic", list(MODELS))
def test_valid_event_passes_schema_and_decoder(topic: str) -> None:
    instance = VALID_EVENTS[topic]
    validator(topic).validate(instance)
    decoded = validate_event(topic, instance, default_policy().cohorts)
    assert not isinstance(decoded, Rejection), decoded


@pytest.mark.parametrize("topic", list(MODELS))
def test_valid_event_passes_in_a_replay_envelope(topic: str) -> None:
    validator("envelope").validate({"topic": topic, "value": VALID_EVENTS[topic]})


@pytest.mark.parametrize(
    "name", ["alert", "escalation", "person-status", "daily-report", "deadletter"]
)
def test_output_records_pass_their_schema(name: str) -> None:
    validator(name).validate(output_samples()[name])


def test_the_alerts_schema_keeps_the_contracts_kinds() -> None:
    # An escalation is valid on its own topic and invalid as an alert: alerts keep §5's kinds.
    escalation = output_samples()["escalation"]
    assert not validator("alert").is_valid(escalation)
    assert sorted(SCHEMAS["alert"]["properties"]["kind"]["enum"]) == sorted([
        "unlocated", "followup_overdue", "test_missed", "positive", "pool_positive",
        "retest_missed", "lab_sla_breached", "orphan_result", "identity_suspect",
        "round_missed", "entry_without_proof", "landing_test_missed", "sentinel_untested",
        "late_entries", "lab_silent", "rectification_overdue", "recheck_missed",
        "recheck_failed", "repeat_offender"])
    assert SCHEMAS["escalation"]["properties"]["kind"]["enum"] == ["escalated"]


# --- bad events fail ----------------------------------------------------------


def changed(topic: str, **changes: Any) -> dict[str, Any]:
    data = dict(VALID_EVENTS[topic])
    for field, value in changes.items():
        if value is ...:
            data.pop(field, None)
        else:
            data[field] = value
    return data


BAD: list[tuple[str, str, Any]] = [
    ("missing-field", "sampling", changed("sampling", tube_id=...)),
    ("wrong-type", "sampling", changed("sampling", pool_size="10")),
    ("pool-size-0", "sampling", changed("sampling", pool_size=0)),
    ("short-person-id", "followup", changed("followup", person_id="pz:1")),
    ("unknown-enum", "travel", changed("travel", risk="low")),
    ("naive-timestamp", "travel", changed("travel", arrived_at="2022-09-05T21:40:00")),
    ("date-only", "lab", changed("lab", occurred_at="2022-09-06")),
    # RFC 3339 needs the colon; the decoder is lenient here (msgspec takes +0800), the
    # published schema is not: producers should send what the contract says.
    ("offset-without-colon", "followup",
     changed("followup", occurred_at="2022-09-06T09:10:00+0800")),
    ("raw-resident-id", "sampling", changed("sampling", person_id="11010119900307123X")),
    ("raw-mobile", "cohort", changed("cohort", person_id="13812345678")),
    ("raw-mobile-as-operator", "action", changed("action", operator_id="13812345678")),
    ("lab-reported-without-result", "lab", changed("lab", result=...)),
    ("finding-without-category", "inspection", changed("inspection", category=...)),
    ("finding-null-severity", "inspection", changed("inspection", severity=None)),
    ("recheck-without-result", "inspection", changed("inspection", record="recheck")),
    ("unknown-unit-kind", "inspection", changed("inspection", unit_kind="market")),
    ("category-upper-case", "inspection", changed("inspection", category="Roster")),
    ("raw-mobile-as-inspector", "inspection", changed("inspection", inspector_id="13812345678")),
    ("assign-without-assignee", "action", changed("action", action="assign")),
    ("lab-reported-null-result", "lab", changed("lab", result=None)),
    ("not-an-object", "cohort", ["co-1"]),
]


@pytest.mark.parametrize(
    ("topic", "instance"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_schema_rejects_bad_event(topic: str, instance: Any) -> None:
    assert not is_valid(topic, instance)


@pytest.mark.parametrize(("topic", "changes"), [
    ("inspection", {"record": "rectified", "category": ..., "severity": ...}),
    ("inspection", {"record": "recheck", "result": "pass", "category": ..., "severity": ...}),
    ("inspection", {"record": "rectified", "result": "fail"}),
    ("action", {"action": "assign", "assignee": "op-23"}),
    ("action", {"action": "ack", "assignee": "op-23"}),
], ids=["rectified", "recheck", "rectified-with-result", "assign", "ack-with-assignee"])
def test_schema_and_decoder_agree_on_what_a_record_needs(topic: str,
                                                         changes: dict[str, Any]) -> None:
    instance = changed(topic, **changes)
    assert is_valid(topic, instance)
    assert not isinstance(validate_event(topic, instance), Rejection)


def test_every_field_a_value_requires_is_required_by_schema_and_decoder() -> None:
    # events.REQUIRED_WHEN is the one table: each of its fields, left out where it is
    # required, fails the schema and is missing_field in the decoder
    from closedloop.schemas.events import REQUIRED_WHEN

    for topic, rules in REQUIRED_WHEN.items():
        for switch, value, fields in rules:
            for field in fields:
                instance = changed(topic, **{switch: value, field: ...})
                assert not is_valid(topic, instance), (topic, field)
                rejection = validate_event(topic, instance)
                assert isinstance(rejection, Rejection), (topic, field)
                assert (rejection.reason, rejection.message.split(":")[0]) == (
                    "missing_field", field)


def test_lab_received_may_omit_result() -> None:
    # The if/then applies only to "reported": a received tube has no result yet.
    assert is_valid("lab", changed("lab", status="received", result=...))


@pytest.mark.parametrize(
    "envelope",
    [
        {"value": VALID_EVENTS["lab"]},
        {"topic": "weather", "value": {}},
        {"topic": "lab"},
        {"topic": "lab", "value": VALID_EVENTS["sampling"]},  # value of the wrong topic
    ],
    ids=["no-topic", "unknown-topic", "no-value", "value-of-another-topic"],
)
def test_envelope_schema_rejects_bad_envelopes(envelope: dict[str, Any]) -> None:
    assert not is_valid("envelope", envelope)


def test_an_envelope_may_carry_its_records_receipt() -> None:
    # contract v1.2 §1: received_at, RFC 3339 with an offset, or null (the same as none)
    for given in ("2022-09-06T15:30:00+08:00", "2022-09-06T07:30:00Z", None):
        assert is_valid("envelope", {"topic": "lab", "received_at": given,
                                     "value": VALID_EVENTS["lab"]})
    for given in ("2022-09-06T15:30:00", "yesterday", 1662449400):
        assert not is_valid("envelope", {"topic": "lab", "received_at": given,
                                         "value": VALID_EVENTS["lab"]})


# --- AsyncAPI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text("utf-8"))
    return document


def test_asyncapi_yaml_reads_back_as_the_generated_document(asyncapi: dict[str, Any]) -> None:
    # The hand-written YAML emitter must round-trip through a real YAML parser.
    assert asyncapi == generate.asyncapi_document()
    assert asyncapi["asyncapi"] == "3.0.0"


def test_asyncapi_lists_every_topic_with_key_and_bindings(asyncapi: dict[str, Any]) -> None:
    channels = asyncapi["channels"]
    assert {channel["address"] for channel in channels.values()} == ALL_TOPICS
    for name, channel in channels.items():
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == 12
        assert kafka["replicas"] == 3
        assert kafka["topicConfiguration"]["cleanup.policy"] in (["delete"], ["compact"])
        (message,) = channel["messages"].values()
        resolved = resolve_pointer(asyncapi, message["$ref"])
        assert "type" in resolved["bindings"]["kafka"]["key"], name
        assert "payload" in resolved


def test_asyncapi_keys_follow_the_contract(asyncapi: dict[str, Any]) -> None:
    expected = {
        "sampling": "tube_id", "lab": "tube_id", "travel": "person_id", "followup": "person_id",
        "cohort": "person_id", "action": "subject", "person-tests": "person_id",
        "inspection": "unit_id",
        "alerts": "subject", "escalations": "subject", "person-status": "person_id",
        "daily-report": "district",
    }
    keys = {}
    for message in asyncapi["components"]["messages"].values():
        key = message["bindings"]["kafka"]["key"]
        keys[message["name"]] = key
    for name, field in expected.items():
        assert keys[name]["type"] == "string"
        assert keys[name]["description"].startswith(field)
    assert keys["deadletter"]["type"] == "null"


def test_every_input_channel_has_the_received_at_header(asyncapi: dict[str, Any]) -> None:
    # contract v1.2 §1: a record's own receipt, or none; outputs and internal topics have none
    pattern = re.compile(generate.RECEIPT_HEADER["properties"]["received_at"]["pattern"])
    for message in asyncapi["components"]["messages"].values():
        if message["name"] not in MODELS:
            assert "headers" not in message, message["name"]
            continue
        header = message["headers"]["properties"]["received_at"]
        assert header["type"] == "string"
        for value in ("none", "2022-09-06T15:30:00+08:00", "2022-09-06T07:30:00.25Z"):
            assert pattern.search(value), value
        for value in ("None", "2022-09-06T15:30:00", "soon"):
            assert not pattern.search(value), value


def test_asyncapi_cleanup_and_retention(asyncapi: dict[str, Any]) -> None:
    day = 86_400_000
    config = {
        channel["address"].split(".")[1]: channel["bindings"]["kafka"]["topicConfiguration"]
        for channel in asyncapi["channels"].values()
    }
    compacted = {name for name, c in config.items() if c["cleanup.policy"] == ["compact"]}
    assert compacted == {"person-status", "unit-status", "cohort", "population"}
    for name in ("sampling", "lab", "travel", "followup", "action"):
        assert config[name]["retention.ms"] == 30 * day
    assert config["alerts"]["retention.ms"] == 90 * day
    assert config["escalations"]["retention.ms"] == 90 * day
    assert config["daily-report"]["retention.ms"] == 90 * day
    assert config["deadletter"]["retention.ms"] == 14 * day
    for name in compacted:
        assert "retention.ms" not in config[name]


def test_asyncapi_operations_cover_inputs_and_outputs(asyncapi: dict[str, Any]) -> None:
    actions: dict[str, set[str]] = {}
    for operation in asyncapi["operations"].values():
        channel = resolve_pointer(asyncapi, operation["channel"]["$ref"])
        actions.setdefault(channel["address"], set()).add(operation["action"])
    assert set(actions) == ALL_TOPICS
    assert actions["closedloop.sampling.v1"] == {"receive"}
    assert actions["closedloop.alerts.v1"] == {"send"}
    assert actions["closedloop.escalations.v1"] == {"send"}
    for internal in INTERNAL_TOPICS:
        assert actions[f"closedloop.{internal}.v1"] == {"send", "receive"}


def resolve_pointer(document: Any, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def test_every_asyncapi_ref_resolves(asyncapi: dict[str, Any]) -> None:
    refs = all_refs(asyncapi)
    files = [ref for ref in refs if not ref.startswith("#")]
    assert len(files) == len(SCHEMAS) - 1  # every schema but the replay envelope is a payload
    for ref in refs:
        if ref.startswith("#"):
            assert resolve_pointer(asyncapi, ref) is not None
            continue
        path = (ASYNCAPI.parent / ref).resolve()
        assert path.is_file(), ref
        assert json.loads(path.read_text("utf-8"))["$id"].startswith("https://closedloop.example/")


def test_every_json_schema_ref_resolves() -> None:
    for name, schema in SCHEMAS.items():
        resolver = REGISTRY.resolver(base_uri=schema["$id"])
        for ref in all_refs(schema):
            assert resolver.lookup(ref).contents, f"{name}: {ref}"


def test_yaml_emitter_quotes_what_yaml_would_misread() -> None:
    tricky = {
        "words": ["yes", "No", "on", "null", "true", "y"],
        "numbers": ["3.0.0", "12", "1e3", "0x1F", "-1"],
        "punctuation": ["a: b", "# not a comment", "- item", "x #y", "@at", "*star", "&anchor"],
        "spaces": [" lead", "trail ", ""],
        "text": "first line\nsecond line: with colon",
        "odd-text": "ends with newline\n",
        "unicode": "海淀区 日清日结",
        "nested": [{"a": 1, "b": [True, False, None]}, [1, [2]], {}, []],
        "empty": {},
        "$ref": "#/components/messages/x",
    }
    assert yaml.safe_load(generate.to_yaml(tricky)) == tricky
