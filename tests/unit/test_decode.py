"""The decoder against CONTRACT.md §3: every kind of bad input maps to its exact ``reason``.

Each case builds one bad event from a valid one, so the test names the only thing wrong.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from helpers import v11_events, v12_events

from closedloop.schemas.decode import (
    Rejection,
    dead_letter,
    decode_envelope,
    decode_event,
    decode_line,
    validate_event,
)
from closedloop.schemas.events import (
    MODELS,
    Action,
    Area,
    Checkpoint,
    Clinic,
    Cohort,
    Followup,
    Inspection,
    Lab,
    Population,
    Round,
    Sampling,
    Travel,
)
from closedloop.schemas.outputs import REJECTION_REASONS, DeadLetter
from closedloop.schemas.policy import default_policy

PERSON = "pz:8f14e45fceea167a5a36dedd4bea2543"
V11_EVENTS = v11_events(PERSON)
V12_EVENTS = v12_events(PERSON)
RESIDENT_ID = "11010119900307123X"
RESIDENT_ID_DIGITS = "110101199003071234"
MOBILE = "13812345678"

VALID: dict[str, dict[str, Any]] = {
    "sampling": {
        "event_id": "smp-1",
        "occurred_at": "2022-09-06T09:30:00+08:00",  # collection time
        "person_id": PERSON,
        "tube_id": "T20220906-0001",
        "site_id": "site-hd-0042",
        "district": "haidian",
        "pool_size": 10,
        "site_lat": 39.959,
        "site_lon": 116.298,
        "reason": "routine",
    },
    "lab": {
        "event_id": "lab-1",
        "occurred_at": "2022-09-06T15:00:00+08:00",
        "tube_id": "T20220906-0001",
        "lab_id": "lab-7",
        "status": "reported",
        "result": "negative",
    },
    "travel": {
        "event_id": "trv-1",
        "occurred_at": "2022-09-06T08:00:00+08:00",  # push time
        "person_id": PERSON,
        "district": "chaoyang",
        "arrived_at": "2022-09-05T21:40:00+08:00",
        "origin": "shanghai-pudong",
        "risk": "medium",
    },
    "followup": {
        "event_id": "fu-1",
        "occurred_at": "2022-09-06T09:10:00+08:00",
        "person_id": PERSON,
        "kind": "located",
        "worker_id": "grid-0815",
    },
    "cohort": {
        "event_id": "co-1",
        "occurred_at": "2022-09-01T08:00:00+08:00",
        "person_id": PERSON,
        "cohort": "courier",
        "district": "haidian",
        "active": True,
    },
    "action": {
        "event_id": "act-1",
        "occurred_at": "2022-09-06T12:00:00+08:00",
        "alert_id": "al-3c59dc048e885024",
        "subject": PERSON,
        "action": "ack",
        "operator_id": "op-17",
        "note": "called, will test this afternoon",
    },
    **V11_EVENTS,
    **V12_EVENTS,
}
MODEL_OF = {
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


def event(topic: str, **changes: Any) -> dict[str, Any]:
    """A valid event of ``topic`` with ``changes``; a value of ``...`` removes the field."""
    data = dict(VALID[topic])
    for field, value in changes.items():
        if value is ...:
            data.pop(field, None)
        else:
            data[field] = value
    return data


def reject(topic: str, raw: bytes) -> Rejection:
    result = decode_event(topic, raw, default_policy().cohorts)
    assert isinstance(result, Rejection), f"accepted: {result!r}"
    return result


# (case id, topic, raw message value, reason, text the message must name)
BAD: list[tuple[str, str, bytes, str, str]] = [
    ("not-json", "sampling", b'{"event_id": "smp-1", ', "not_json", "not JSON"),
    ("not-json-empty", "lab", b"", "not_json", "not JSON"),
    ("not-object-array", "sampling", b"[1, 2]", "not_object", "object"),
    ("not-object-string", "travel", b'"travel"', "not_object", "object"),
    ("not-object-null", "followup", b"null", "not_object", "object"),
    ("missing-field", "sampling", orjson.dumps(event("sampling", tube_id=...)), "missing_field",
     "tube_id"),
    ("missing-timestamp", "travel", orjson.dumps(event("travel", arrived_at=...)),
     "missing_field", "arrived_at"),
    ("null-required-field", "cohort", orjson.dumps(event("cohort", district=None)),
     "missing_field", "district"),
    ("wrong-type-int-as-string", "sampling", orjson.dumps(event("sampling", pool_size="10")),
     "wrong_type", "pool_size"),
    ("wrong-type-bool-as-int", "sampling", orjson.dumps(event("sampling", pool_size=True)),
     "wrong_type", "pool_size"),
    ("wrong-type-bool", "cohort", orjson.dumps(event("cohort", active="yes")), "wrong_type",
     "active"),
    ("wrong-type-timestamp-number", "followup",
     orjson.dumps(event("followup", occurred_at=1662427800)), "wrong_type", "occurred_at"),
    ("unknown-enum-risk", "travel", orjson.dumps(event("travel", risk="low")), "unknown_enum",
     "risk"),
    ("unknown-enum-status", "lab", orjson.dumps(event("lab", status="lost")), "unknown_enum",
     "status"),
    ("unknown-enum-action", "action", orjson.dumps(event("action", action="close")),
     "unknown_enum", "action"),
    ("naive-timestamp", "sampling",
     orjson.dumps(event("sampling", occurred_at="2022-09-06T09:30:00")), "naive_timestamp",
     "occurred_at"),
    ("naive-arrival", "travel", orjson.dumps(event("travel", arrived_at="2022-09-05 21:40:00")),
     "naive_timestamp", "arrived_at"),
    ("invalid-timestamp-text", "followup",
     orjson.dumps(event("followup", occurred_at="yesterday")), "invalid_timestamp",
     "occurred_at"),
    ("invalid-timestamp-date", "lab",
     orjson.dumps(event("lab", occurred_at="2022-02-30T09:30:00+08:00")), "invalid_timestamp",
     "occurred_at"),
    ("invalid-pool-size-0", "sampling", orjson.dumps(event("sampling", pool_size=0)),
     "invalid_value", "pool_size"),
    ("invalid-person-id-short", "followup", orjson.dumps(event("followup", person_id="pz:1")),
     "invalid_value", "person_id"),
    ("invalid-person-id-chars", "travel",
     orjson.dumps(event("travel", person_id="pz:has space")), "invalid_value", "person_id"),
    ("invalid-latitude", "sampling", orjson.dumps(event("sampling", site_lat=91.0)),
     "invalid_value", "site_lat"),
    ("invalid-empty-event-id", "action", orjson.dumps(event("action", event_id="")),
     "invalid_value", "event_id"),
    ("unknown-cohort", "cohort", orjson.dumps(event("cohort", cohort="astronaut")),
     "unknown_cohort", "cohort"),
    ("lab-reported-without-result", "lab", orjson.dumps(event("lab", result=...)),
     "missing_field", "result"),
    ("lab-reported-null-result", "lab", orjson.dumps(event("lab", result=None)),
     "missing_field", "result"),
    ("unknown-topic", "weather", orjson.dumps(VALID["sampling"]), "unknown_topic", "weather"),
    ("implausible-time-before-2000", "followup",
     orjson.dumps(event("followup", occurred_at="1999-12-31T23:59:59Z")), "implausible_time",
     "occurred_at"),
    # edge cases the contract leaves open (schemas/VALIDATION.md, "Edge cases")
    ("duplicate-key", "followup",
     orjson.dumps(VALID["followup"])[:-1] + b',"person_id":"pz:someone-else"}',
     "duplicate_key", "person_id"),
    ("duplicate-key-escaped", "followup",
     orjson.dumps(VALID["followup"])[:-1] + b',"\\u006bind":"released"}',
     "duplicate_key", "kind"),
    ("duplicate-key-spaced", "lab",
     orjson.dumps(VALID["lab"])[:-1] + b' , "status" : "received"}', "duplicate_key", "status"),
    ("event-id-spaces", "followup", orjson.dumps(event("followup", event_id="   ")),
     "invalid_value", "event_id"),
    ("event-id-newline", "lab", orjson.dumps(event("lab", event_id="lab-1\nlab-2")),
     "invalid_value", "event_id"),
    ("event-id-nul", "lab", orjson.dumps(event("lab", event_id="lab\u0000")),
     "invalid_value", "event_id"),
    ("event-id-trailing-space", "lab", orjson.dumps(event("lab", event_id="lab-1 ")),
     "invalid_value", "event_id"),
    # a plain ASCII line skips the per-field name checks only when its bytes prove them
    ("event-id-leading-space", "lab", orjson.dumps(event("lab", event_id=" lab-1")),
     "invalid_value", "event_id"),
    ("district-del", "sampling", orjson.dumps(event("sampling", district="hai\x7fdian")),
     "invalid_value", "district"),
    ("district-trailing-space-spaced-json", "cohort",
     json.dumps(event("cohort", district="haidian ")).encode(), "invalid_value", "district"),
    ("district-newline", "sampling", orjson.dumps(event("sampling", district="hai\ndian")),
     "invalid_value", "district"),
    ("district-bidi-override", "travel",
     orjson.dumps(event("travel", district="\u202enaidiah")), "invalid_value", "district"),
    ("district-zero-width", "cohort",
     orjson.dumps(event("cohort", district="hai\u200bdian")), "invalid_value", "district"),
    ("district-ideographic-spaces", "cohort",
     orjson.dumps(event("cohort", district="\u3000\u3000")), "invalid_value", "district"),
    ("origin-line-separator", "travel", orjson.dumps(event("travel", origin="a\u2028b")),
     "invalid_value", "origin"),
    ("note-bidi-override", "action", orjson.dumps(event("action", note="ok \u202e")),
     "invalid_value", "note"),
    ("person-id-trailing-newline", "followup",
     orjson.dumps(event("followup", person_id="pz:abcdefgh\n")), "invalid_value", "person_id"),
    ("tube-id-trailing-newline", "lab", orjson.dumps(event("lab", tube_id="T-1\n")),
     "invalid_value", "tube_id"),
    ("latitude-without-longitude", "sampling", orjson.dumps(event("sampling", site_lon=...)),
     "missing_field", "site_lon"),
    ("longitude-without-latitude", "sampling", orjson.dumps(event("sampling", site_lat=None)),
     "missing_field", "site_lat"),
    # contract v1.2: the fields an inspection's record and an action need
    ("finding-without-category", "inspection", orjson.dumps(event("inspection", category=...)),
     "missing_field", "category"),
    ("finding-without-severity", "inspection", orjson.dumps(event("inspection", severity=...)),
     "missing_field", "severity"),
    ("finding-null-severity", "inspection", orjson.dumps(event("inspection", severity=None)),
     "missing_field", "severity"),
    ("recheck-without-result", "inspection",
     orjson.dumps(event("inspection", record="recheck", category=..., severity=...)),
     "missing_field", "result"),
    ("inspection-without-finding-id", "inspection",
     orjson.dumps(event("inspection", record="rectified", finding_id=...)), "missing_field",
     "finding_id"),
    ("unknown-enum-record", "inspection", orjson.dumps(event("inspection", record="fined")),
     "unknown_enum", "record"),
    ("unknown-enum-unit-kind", "inspection",
     orjson.dumps(event("inspection", unit_kind="market")), "unknown_enum", "unit_kind"),
    ("unknown-enum-severity", "inspection",
     orjson.dumps(event("inspection", severity="serious")), "unknown_enum", "severity"),
    ("unknown-enum-recheck-result", "inspection",
     orjson.dumps(event("inspection", record="recheck", result="passed")), "unknown_enum",
     "result"),
    ("category-upper-case", "inspection",
     orjson.dumps(event("inspection", category="Venue_Code")), "invalid_value", "category"),
    ("category-33-characters", "inspection",
     orjson.dumps(event("inspection", category="c" * 33)), "invalid_value", "category"),
    ("unit-id-65-characters", "inspection", orjson.dumps(event("inspection", unit_id="u" * 65)),
     "invalid_value", "unit_id"),
    ("finding-id-with-space", "inspection",
     orjson.dumps(event("inspection", finding_id="f 1")), "invalid_value", "finding_id"),
    ("inspector-id-short", "inspection", orjson.dumps(event("inspection", inspector_id="li")),
     "invalid_value", "inspector_id"),
    ("inspection-district-blank", "inspection",
     orjson.dumps(event("inspection", district=" ")), "invalid_value", "district"),
    ("assign-without-assignee", "action", orjson.dumps(event("action", action="assign")),
     "missing_field", "assignee"),
    ("assign-null-assignee", "action",
     orjson.dumps(event("action", action="assign", assignee=None)), "missing_field",
     "assignee"),
    ("assignee-not-an-id", "action",
     orjson.dumps(event("action", action="assign", assignee="op 17")), "invalid_value",
     "assignee"),
]


@pytest.mark.parametrize(
    ("topic", "raw", "reason", "names"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_input_gets_its_reason(topic: str, raw: bytes, reason: str, names: str) -> None:
    rejection = reject(topic, raw)
    assert rejection.reason == reason
    assert names in rejection.message


def test_every_decoder_reason_is_covered() -> None:
    """pool_overflow and internal_error come from the engine; every other reason has a case
    here (internal_error: tests/replay/test_partitioned_bus.py)."""
    covered = {case[3] for case in BAD} | {"raw_identifier", "bad_envelope"}
    assert covered == set(REJECTION_REASONS) - {"pool_overflow", "internal_error"}


RAW_CASES = [
    ("resident-id", "followup", "person_id", RESIDENT_ID),
    ("resident-id-lower-x", "sampling", "person_id", RESIDENT_ID.lower()),
    ("resident-id-digits", "travel", "person_id", RESIDENT_ID_DIGITS),
    ("mobile", "cohort", "person_id", MOBILE),
    ("mobile-as-worker", "followup", "worker_id", MOBILE),
    ("resident-id-as-operator", "action", "operator_id", RESIDENT_ID),
    ("mobile-as-subject", "action", "subject", MOBILE),
]


@pytest.mark.parametrize(
    ("topic", "field", "raw_id"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_raw_identifier_is_rejected_and_never_repeated(topic: str, field: str, raw_id: str) -> None:
    raw = orjson.dumps(event(topic, **{field: raw_id}))
    rejection = reject(topic, raw)
    assert rejection.reason == "raw_identifier"
    assert field in rejection.message
    assert raw_id not in rejection.message
    letter = dead_letter(rejection, raw, topic=f"closedloop.{topic}.v1", partition=3, offset=42)
    encoded = msgspec.json.encode(letter)
    assert raw_id.encode() not in encoded
    assert raw_id.upper().encode() not in encoded
    assert letter.original_encoding == "utf-8"
    # The rest of the event survives, with the identifier replaced.
    assert orjson.loads(letter.original)[field] == "[redacted]"
    assert orjson.loads(letter.original)["event_id"] == VALID[topic]["event_id"]


def test_raw_identifier_in_any_field_wins_over_other_errors_and_is_redacted() -> None:
    # The risk value is wrong AND is a mobile number: a raw identifier in any field is
    # rejected as such, and neither the message nor the letter carries it.
    raw = orjson.dumps(event("travel", risk=MOBILE))
    rejection = reject("travel", raw)
    assert rejection.reason == "raw_identifier"
    letter = msgspec.json.encode(dead_letter(rejection, raw, line=7))
    assert MOBILE not in rejection.message
    assert MOBILE.encode() not in letter


def test_raw_identifier_in_undecodable_bytes_is_redacted_in_the_base64_copy() -> None:
    raw = b'{"event_id":"fu-9","person_id":"' + RESIDENT_ID.encode() + b'","note":"\xff"}'
    rejection = reject("followup", raw)
    letter = dead_letter(rejection, raw, topic="closedloop.followup.v1")
    assert letter.original_encoding == "base64"
    assert RESIDENT_ID.encode() not in base64.b64decode(letter.original)
    assert b"[redacted]" in base64.b64decode(letter.original)


def test_escaped_raw_identifier_in_free_text_is_redacted_in_the_dead_letter() -> None:
    # JSON \u escapes hide the digits from a scan of the text; the decoded copy must not
    # reveal them either.
    escaped = "".join(f"\\u{ord(c):04x}" for c in MOBILE)
    raw = b'{"event_id":"fu-8","kind":"called","note":"call ' + escaped.encode() + b' now"}'
    rejection = reject("followup", raw)
    letter = dead_letter(rejection, raw)
    assert MOBILE not in str(orjson.loads(letter.original))
    assert escaped not in letter.original


@pytest.mark.parametrize("depth", [300, 600, 1000, 3000])
def test_deeply_nested_input_never_raises(depth: int) -> None:
    # An unknown field nested deeper than the parsers' limits: a result, never an exception.
    nest = b"[" * depth + b"]" * depth
    valid = orjson.dumps(VALID["followup"])[:-1] + b',"x":' + nest + b"}"
    result = decode_event("followup", valid)
    assert isinstance(result, Followup | Rejection)
    line = decode_line(b'{"topic":"followup","value":' + valid + b"}")
    assert isinstance(line, tuple | Rejection)
    # ...and a rejected one, with a raw identifier, still makes a clean dead letter.
    bad = valid.replace(PERSON.encode(), MOBILE.encode())
    rejection = reject("followup", bad)
    assert rejection.reason in {"raw_identifier", "not_json"}
    assert MOBILE.encode() not in msgspec.json.encode(dead_letter(rejection, bad))


def test_non_utf8_bytes_are_not_json_with_a_base64_dead_letter() -> None:
    raw = b'{"event_id": "smp-1", "district": "\xb3\xaf\xd1\xf4"}'  # GBK, not UTF-8
    rejection = reject("sampling", raw)
    assert rejection.reason == "not_json"
    letter = dead_letter(rejection, raw, topic="closedloop.sampling.v1", partition=0, offset=9)
    assert letter.original_encoding == "base64"
    assert base64.b64decode(letter.original) == raw
    assert (letter.topic, letter.partition, letter.offset, letter.line) == (
        "closedloop.sampling.v1", 0, 9, None
    )
    in_replay = decode_line(b'{"topic": "sampling", "value": ' + raw + b"}")
    assert isinstance(in_replay, Rejection)
    assert in_replay.reason == "not_json"


def test_dead_letter_keeps_utf8_originals_as_they_were() -> None:
    raw = orjson.dumps(event("sampling", district="海淀区", pool_size=0))
    rejection = reject("sampling", raw)
    letter = dead_letter(rejection, raw, line=12)
    assert (letter.reason, letter.line, letter.original_encoding) == ("invalid_value", 12, "utf-8")
    assert letter.original == raw.decode()


@pytest.mark.parametrize("topic", list(MODELS))
def test_valid_event_decodes_into_its_model(topic: str) -> None:
    result = decode_event(topic, orjson.dumps(VALID[topic]), default_policy().cohorts)
    assert type(result) is MODEL_OF[topic]
    assert result.event_id == VALID[topic]["event_id"]
    assert result.occurred_at == datetime.fromisoformat(VALID[topic]["occurred_at"])


def test_optional_fields_may_be_left_out() -> None:
    raw = orjson.dumps(event("sampling", site_lat=..., site_lon=..., reason=...))
    result = decode_event("sampling", raw)
    assert isinstance(result, Sampling)
    assert (result.site_lat, result.site_lon, result.reason) == (None, None, None)


@pytest.mark.parametrize(("changes", "record"), [
    ({"record": "rectified", "category": ..., "severity": ...}, "rectified"),
    ({"record": "recheck", "category": ..., "severity": ..., "result": "fail"}, "recheck"),
    # a field the record does not use is validated and otherwise ignored
    ({"record": "rectified", "result": "pass"}, "rectified"),
    ({"result": "fail"}, "finding"),
    ({"inspector_id": ...}, "finding"),
], ids=["rectified-bare", "recheck-with-result", "rectified-with-result",
        "finding-with-result", "no-inspector"])
def test_an_inspection_needs_only_what_its_record_needs(changes: dict[str, Any],
                                                        record: str) -> None:
    result = decode_event("inspection", orjson.dumps(event("inspection", **changes)))
    assert isinstance(result, Inspection), result
    assert result.record == record


def test_an_action_may_assign_and_ack_or_resolve_ignore_an_assignee() -> None:
    assigned = decode_event("action", orjson.dumps(
        event("action", action="assign", assignee="op-23")))
    assert isinstance(assigned, Action) and assigned.assignee == "op-23"
    acked = decode_event("action", orjson.dumps(event("action", assignee="op-23")))
    assert isinstance(acked, Action) and acked.action == "ack"
    raw = decode_event("action", orjson.dumps(event("action", action="assign",
                                                    assignee=MOBILE)))
    assert isinstance(raw, Rejection) and raw.reason == "raw_identifier"
    assert MOBILE not in raw.message


def test_lab_received_needs_no_result() -> None:
    result = validate_event("lab", event("lab", status="received", result=...))
    assert isinstance(result, Lab)
    assert result.result is None


def test_unknown_extra_fields_are_ignored() -> None:
    raw = orjson.dumps(event("travel", vaccine_doses=3, source={"system": "push-v2"}))
    result = decode_event("travel", raw)
    assert isinstance(result, Travel)
    assert not hasattr(result, "vaccine_doses")


def test_z_offset_is_accepted_as_utc() -> None:
    result = validate_event("followup", event("followup", occurred_at="2022-09-06T01:10:00Z"))
    assert isinstance(result, Followup)
    assert result.occurred_at == datetime(2022, 9, 6, 1, 10, tzinfo=UTC)
    assert result.occurred_at == datetime(2022, 9, 6, 9, 10, tzinfo=timezone(timedelta(hours=8)))


def test_cohort_names_are_checked_only_against_the_given_policy() -> None:
    cohorts = default_policy().cohorts
    assert isinstance(validate_event("cohort", event("cohort", cohort="cold_chain"), cohorts),
                      Cohort)
    custom = validate_event("cohort", event("cohort", cohort="astronaut"), {"astronaut"})
    assert isinstance(custom, Cohort)


def test_validate_event_refuses_unknown_topic_before_anything_else() -> None:
    result = validate_event("weather", "not even an object")
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_topic"


# --- the replay envelope ------------------------------------------------------


def test_envelope_gives_topic_and_value() -> None:
    line = orjson.dumps({"topic": "lab", "value": VALID["lab"]})
    assert decode_envelope(line) == ("lab", VALID["lab"])


@pytest.mark.parametrize(
    ("line", "reason", "names"),
    [
        (b'{"value": {}}', "bad_envelope", "topic"),
        (b'{"topic": 7, "value": {}}', "bad_envelope", "topic"),
        (b'{"topic": "lab"}', "bad_envelope", "value"),
        (b'{"topic": "lab", "value": ', "not_json", "not JSON"),
        (b'["lab", {}]', "not_object", "object"),
    ],
    ids=["no-topic", "topic-not-string", "no-value", "not-json", "not-object"],
)
def test_bad_envelope(line: bytes, reason: str, names: str) -> None:
    result = decode_envelope(line)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert names in result.message


def test_envelope_with_unknown_topic_is_rejected_by_the_event_step() -> None:
    parsed = decode_envelope(b'{"topic": "weather", "value": {}}')
    assert parsed == ("weather", {})
    result = validate_event(*parsed)
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_topic"


# --- contract v1.1: a raw identifier in any string, anywhere ---------------------------------

RECEIVED = datetime(2022, 9, 6, 12, 0, tzinfo=UTC).timestamp()  # after every VALID event


def line_of(topic: str, value: Any, **envelope: Any) -> bytes:
    return orjson.dumps({"topic": topic, "value": value, **envelope})


def decoded(line: bytes) -> Any:
    """The event or rejection ``decode_line`` gives, received at RECEIVED."""
    result = decode_line(line, default_policy().cohorts, received_at=RECEIVED)
    return result if isinstance(result, Rejection) else result[1]


def assert_raw_and_redacted(line: bytes, *secrets: bytes) -> DeadLetter:
    """``line`` is rejected as raw_identifier and none of ``secrets`` is in any copy."""
    rejection = decoded(line)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason == "raw_identifier"
    letter = dead_letter(rejection, line, line=1)
    copies = [msgspec.json.encode(letter), rejection.message.encode()]
    if letter.original_encoding == "base64":
        copies.append(base64.b64decode(letter.original))
    else:
        copies.append(letter.original.encode())
        unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)),
                           letter.original)  # escapes read too
        copies.append(unescaped.encode("utf-8", "surrogatepass"))
    for secret in secrets:
        assert not any(secret in copy for copy in copies), secret
    return letter


FULL_WIDTH_MOBILE = "".join(chr(0xFF10 + int(d)) for d in MOBILE)  # １３８１２３４５６７８


def test_full_width_digits_are_a_raw_identifier() -> None:
    line = line_of("followup", event("followup", worker_id="gw-1", note=...) | {
        "note": f"call {FULL_WIDTH_MOBILE}"})
    letter = assert_raw_and_redacted(line, FULL_WIDTH_MOBILE.encode(), MOBILE.encode())
    assert orjson.loads(letter.original)["value"]["note"] == "call [redacted]"


@pytest.mark.parametrize("prefix", ["+86", "0086"])
def test_mobile_with_country_code_is_redacted_with_its_prefix(prefix: str) -> None:
    line = line_of("action", event("action", note=f"tel {prefix}{MOBILE}."))
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert orjson.loads(letter.original)["value"]["note"] == "tel [redacted]."


def test_a_key_that_is_a_raw_identifier_is_rejected_and_redacted() -> None:
    line = line_of("sampling", event("sampling") | {"extras": {MOBILE: True}})
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert "[redacted] (a key)" in letter.message
    assert orjson.loads(letter.original)["value"]["extras"] == {"[redacted]": True}


def test_a_raw_mobile_as_envelope_topic_is_rejected_and_redacted() -> None:
    line = line_of(MOBILE, VALID["lab"])
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert letter.topic is None
    assert orjson.loads(letter.original)["topic"] == "[redacted]"


def test_a_raw_identifier_in_another_envelope_field_is_rejected() -> None:
    assert_raw_and_redacted(line_of("lab", VALID["lab"], source=f"import {RESIDENT_ID}"),
                            RESIDENT_ID.encode())


def test_an_identifier_inside_free_text_is_rejected() -> None:
    line = line_of("followup", event("followup") | {"note": f"phone:{MOBILE},call back"})
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert orjson.loads(letter.original)["value"]["note"] == "phone:[redacted],call back"


def test_an_identifier_inside_district_is_rejected() -> None:
    line = line_of("sampling", event("sampling", district=f"haidian {RESIDENT_ID_DIGITS} bldg"))
    letter = assert_raw_and_redacted(line, RESIDENT_ID_DIGITS.encode())
    assert orjson.loads(letter.original)["value"]["district"] == "haidian [redacted] bldg"


def test_a_tube_id_holding_a_mobile_is_rejected() -> None:
    # contract v1.1: "tb-13812345678 is rejected"
    assert_raw_and_redacted(line_of("lab", event("lab", tube_id=f"tb-{MOBILE}")), MOBILE.encode())


@pytest.mark.parametrize(
    "text",
    [
        "1" + "2" * 18,            # 19 digits: not a resident ID, not a mobile
        "0" + MOBILE,              # 12 digits: the mobile is part of a longer run
        MOBILE + "9",              # ditto, the other side
        "87" + MOBILE,             # 13 digits: only 86 makes a prefix (v1.2)
        "860" + MOBILE,            # 86 then a 12-digit run
        "2" + MOBILE[1:],          # 11 digits not starting with 1
        "1" * 16 + "X",            # 16 digits and X
        "139-8765-43210",          # 3-4-5: no 3-4-4 group
        "1390-8765-4321",          # 4-4-4
        "139--8765-4321",          # two hyphens: not single
    ],
    ids=["19-digits", "12-digits-before", "12-digits-after", "87-glued", "86-then-12",
         "not-1", "16-and-x", "3-4-5", "4-4-4", "two-hyphens"],
)
def test_digit_runs_that_are_not_identifiers_are_accepted(text: str) -> None:
    result = decoded(line_of("lab", event("lab", tube_id=f"tb-{text}")))
    assert isinstance(result, Lab), result
    assert result.tube_id == f"tb-{text}"


def test_numbers_with_few_digits_are_fine() -> None:
    line = line_of("sampling", event("sampling", site_lat=31.238716) | {"n": 1381234567})
    result = decoded(line)
    assert isinstance(result, Sampling), result
    assert result.site_lat == 31.238716


def test_escaped_digits_in_a_replay_line_are_found_and_redacted() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in MOBILE).encode()
    line = (b'{"topic":"followup","value":{"event_id":"fu-8","occurred_at":"2022-09-06T09:10'
            b':00+08:00","person_id":"' + PERSON.encode() + b'","kind":"visit","note":"call '
            + escaped + b' now"}}')
    letter = assert_raw_and_redacted(line, MOBILE.encode(), escaped)
    assert orjson.loads(letter.original)["value"]["note"] == "call [redacted] now"
    assert letter.original.startswith('{"topic":"followup"')  # the rest kept as written


def test_escaped_digits_next_to_a_lone_surrogate_are_found() -> None:
    # orjson refuses a lone surrogate; the search must still read the escapes
    escaped = "".join(f"\\u{ord(c):04x}" for c in MOBILE).encode()
    line = b'{"topic":"followup","value":{"note":"\\ud800 ' + escaped + b'"}}'
    assert_raw_and_redacted(line, MOBILE.encode(), escaped)


def test_non_utf8_line_with_a_mobile_has_a_redacted_base64_original() -> None:
    line = (b'{"topic":"followup","value":{"event_id":"fu-9","person_id":"' + MOBILE.encode()
            + b'","district":"\xb3\xaf\xd1\xf4"}}')  # GBK, not UTF-8
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert letter.original_encoding == "base64"
    # decoded, redacted, re-encoded: the undecodable bytes are kept as they were
    assert base64.b64decode(letter.original) == line.replace(MOBILE.encode(), b"[redacted]")


def test_raw_identifier_wins_on_a_line_that_is_not_json() -> None:
    line = b'{"topic": "followup", "value": {"person_id": "' + MOBILE.encode() + b'", '
    letter = assert_raw_and_redacted(line, MOBILE.encode())
    assert letter.original == line.decode().replace(MOBILE, "[redacted]")


def test_raw_identifier_wins_over_an_implausible_time() -> None:
    line = line_of("followup", event("followup", occurred_at="0001-01-01T00:00:00+08:00",
                                     worker_id=MOBILE))
    assert_raw_and_redacted(line, MOBILE.encode())


def test_resident_id_ending_in_x_followed_by_digits_is_still_found() -> None:
    line = line_of("action", event("action", note=f"id {RESIDENT_ID}42"))
    letter = assert_raw_and_redacted(line, RESIDENT_ID[:17].encode())
    assert orjson.loads(letter.original)["value"]["note"] == "id [redacted]42"


def test_decode_event_searches_every_string_of_the_value_too() -> None:
    raw = orjson.dumps(event("travel") | {"source": {"caller": f"+86{MOBILE}"}})
    rejection = reject("travel", raw)
    assert rejection.reason == "raw_identifier"
    assert "source.caller" in rejection.message


def test_validate_event_searches_the_topic_and_every_string() -> None:
    assert isinstance(validate_event(MOBILE, {}), Rejection)
    assert validate_event(MOBILE, {}).reason == "raw_identifier"  # type: ignore[union-attr]
    nested = validate_event("lab", event("lab") | {"x": [{"y": [f"a{MOBILE}b"]}]})
    assert isinstance(nested, Rejection) and nested.reason == "raw_identifier"


# --- contract v1.1: implausible times ----------------------------------------------------------

EXTREME = [
    "0001-01-01T00:00:00+08:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+14:00",
]


@pytest.mark.parametrize("instant", EXTREME)
def test_extreme_occurred_at_is_implausible_and_never_raises(instant: str) -> None:
    result = decoded(line_of("followup", event("followup", occurred_at=instant)))
    assert isinstance(result, Rejection)
    assert (result.reason, result.message.split(":")[0]) == ("implausible_time", "occurred_at")


@pytest.mark.parametrize("instant", EXTREME)
def test_extreme_arrived_at_is_implausible_and_never_raises(instant: str) -> None:
    result = decoded(line_of("travel", event("travel", arrived_at=instant)))
    assert isinstance(result, Rejection)
    assert (result.reason, result.message.split(":")[0]) == ("implausible_time", "arrived_at")


def test_occurred_at_2000_01_01_is_accepted_and_a_second_before_is_not() -> None:
    ok = decoded(line_of("followup", event("followup", occurred_at="2000-01-01T00:00:00Z")))
    assert isinstance(ok, Followup)
    early = decoded(line_of("followup", event("followup", occurred_at="1999-12-31T23:59:59Z")))
    assert isinstance(early, Rejection) and early.reason == "implausible_time"
    # the same instant in another offset is the same instant
    local = decoded(line_of("followup", event("followup",
                                              occurred_at="2000-01-01T08:00:00+08:00")))
    assert isinstance(local, Followup)


def test_occurred_at_up_to_receipt_plus_15_minutes_is_accepted_one_second_more_is_not() -> None:
    receipt = datetime(2022, 9, 6, 12, 0, tzinfo=UTC)
    at_limit = (receipt + timedelta(minutes=15)).isoformat()
    beyond = (receipt + timedelta(minutes=15, seconds=1)).isoformat()
    ok = decoded(line_of("followup", event("followup", occurred_at=at_limit)))
    assert isinstance(ok, Followup)
    late = decoded(line_of("followup", event("followup", occurred_at=beyond)))
    assert isinstance(late, Rejection) and late.reason == "implausible_time"
    assert "max_clock_skew" in late.message


def test_max_clock_skew_comes_from_the_caller() -> None:
    beyond = (datetime(2022, 9, 6, 12, 0, tzinfo=UTC) + timedelta(hours=1)).isoformat()
    line = line_of("followup", event("followup", occurred_at=beyond))
    wide = decode_line(line, received_at=RECEIVED, max_clock_skew=7200)
    assert isinstance(wide, tuple) and isinstance(wide[1], Followup)
    unknown_receipt = decode_line(line)  # no receipt: no upper bound
    assert isinstance(unknown_receipt, tuple) and isinstance(unknown_receipt[1], Followup)


@pytest.mark.parametrize("sign", [-1, 1], ids=["before", "after"])
def test_arrived_at_366_days_away_is_accepted_367_is_not(sign: int) -> None:
    pushed = datetime.fromisoformat(VALID["travel"]["occurred_at"])
    receipt = (pushed + timedelta(days=400)).timestamp()  # not what is tested here
    for days, accepted in ((366, True), (367, False)):
        arrived = (pushed + sign * timedelta(days=days)).isoformat()
        line = line_of("travel", event("travel", arrived_at=arrived))
        result = decode_line(line, received_at=receipt)
        assert isinstance(result, tuple)
        assert isinstance(result[1], Travel) is accepted, (days, result[1])
        if not accepted:
            assert result[1].reason == "implausible_time"  # type: ignore[union-attr]


def test_decode_event_checks_times_against_the_record_receipt() -> None:
    raw = orjson.dumps(VALID["followup"])  # 2022-09-06T09:10:00+08:00
    received_before = datetime(2022, 9, 6, 0, 0, tzinfo=UTC).timestamp()  # 08:00 +08:00
    early = decode_event("followup", raw, received_at=received_before)
    assert isinstance(early, Rejection) and early.reason == "implausible_time"
    assert isinstance(decode_event("followup", raw, received_at=RECEIVED), Followup)


def test_an_occurred_at_near_a_new_year_is_checked_exactly() -> None:
    # 23:59:59 on New Year's Eve at -23:59 is 23:58:59 UTC on New Year's Day
    receipt = datetime(2023, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    line = line_of("followup", event("followup", occurred_at="2022-12-31T23:59:59-23:59"))
    late = decode_line(line, received_at=receipt)
    assert isinstance(late, tuple) and isinstance(late[1], Rejection)
    assert late[1].reason == "implausible_time"
    # and a local year-2001 instant that is still in 2000 UTC is plausible
    early = line_of("followup", event("followup", occurred_at="2001-01-01T00:00:00+14:00"))
    assert isinstance(decoded(early), Followup)


# --- edge cases the contract leaves open (schemas/VALIDATION.md) ----------------------------

EDGE_CASES = BAD[[case[0] for case in BAD].index("duplicate-key"):]


@pytest.mark.parametrize(
    ("topic", "raw", "reason", "names"), [case[1:] for case in EDGE_CASES],
    ids=[case[0] for case in EDGE_CASES],
)
def test_a_replay_line_gets_the_same_reason_as_the_message_value(
    topic: str, raw: bytes, reason: str, names: str
) -> None:
    # Both the compact line (msgspec's fast path) and a spaced one (the slow path).
    for line in (b'{"topic":"' + topic.encode() + b'","value":' + raw + b"}",
                 b'{"value": ' + raw + b', "topic": "' + topic.encode() + b'", "x": {}}'):
        decoded = decode_line(line, default_policy().cohorts)
        assert isinstance(decoded, tuple), decoded
        assert decoded[0] == topic
        assert isinstance(decoded[1], Rejection), decoded[1]
        assert (decoded[1].reason, names in decoded[1].message) == (reason, True)


def test_a_repeated_topic_key_leaves_the_line_without_a_topic() -> None:
    line = b'{"topic":"lab","topic":"followup","value":' + orjson.dumps(VALID["followup"]) + b"}"
    assert decode_line(line) == Rejection(
        "duplicate_key", "topic: a key given twice in one object (which value counts would "
        "depend on the parser)")


def test_a_raw_identifier_under_a_repeated_key_wins_and_is_redacted() -> None:
    # The raw value comes first, so a parser keeping the last value never sees it.
    line = (b'{"topic":"followup","value":' + orjson.dumps(event("followup", person_id=MOBILE))
            [:-1] + b',"person_id":"' + PERSON.encode() + b'"}}')
    decoded = decode_line(line)
    assert isinstance(decoded, tuple) and decoded[0] == "followup"
    rejection = decoded[1]
    assert isinstance(rejection, Rejection) and rejection.reason == "raw_identifier"
    letter = dead_letter(rejection, line)
    assert MOBILE not in letter.original and "[redacted]" in letter.original
    assert PERSON in letter.original  # the rest kept as written


@pytest.mark.parametrize(
    ("topic", "changes"),
    [
        ("sampling", {"district": "浦东\u3000新区"}),  # an ideographic space inside a name
        ("sampling", {"district": "\ue000村"}),  # a private-use character (a rare hanzi)
        ("sampling", {"site_lat": ..., "site_lon": ...}),  # no coordinates at all
        ("action", {"note": "called twice,\nno answer\tretry"}),  # a multi-line note
        ("action", {"note": ""}),
        ("travel", {"origin": "Ürümqi"}),
    ],
    ids=["ideographic-space", "private-use", "no-coordinates", "note-lines", "note-empty",
         "origin-accented"],
)
def test_names_people_write_are_accepted(topic: str, changes: dict[str, Any]) -> None:
    raw = orjson.dumps(event(topic, **changes))
    assert isinstance(decode_event(topic, raw, default_policy().cohorts), MODELS[topic])


def test_the_same_key_in_different_objects_is_not_a_repeat() -> None:
    raw = orjson.dumps(event("followup", extra={"a": 1, "b": {"a": 2}}, other=[{"a": 3}]))
    assert isinstance(decode_event("followup", raw), Followup)
    line = b'{"topic": "followup", "value": ' + raw + b', "meta": {"topic": "x"}}'
    decoded = decode_line(line)
    assert isinstance(decoded, tuple) and isinstance(decoded[1], Followup)


def test_a_colon_inside_a_string_is_not_taken_for_a_key() -> None:
    raw = orjson.dumps(event("action", note='he said "kind": "ok"'))
    assert isinstance(decode_event("action", raw), Action)


@pytest.mark.parametrize("char", ["a", "\x00", "界"], ids=["ascii", "escaped", "han"])
def test_a_megabyte_string_costs_memory_in_proportion(char: str) -> None:
    # A string literal regex with an alternation under `*` once kept ~130 bytes a character.
    import tracemalloc

    line = b'{"topic":"followup","value":' + orjson.dumps(event("followup", event_id=char * 10**6,
                                                               x={"a": 1}, y=[{"a": 2}])) + b"}"
    tracemalloc.start()
    try:
        decoded = decode_line(line)
        letter = dead_letter(decoded[1] if isinstance(decoded, tuple) else decoded, line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert letter.reason == "invalid_value"
    assert peak < 16 * len(line) + 2**20, f"{peak / len(line):.0f} bytes a line byte"


def test_a_raw_identifier_line_names_its_input_topic_but_never_a_raw_one() -> None:
    # given a sampling line holding a mobile in its district, and one whose topic is a mobile
    value = {**VALID["sampling"], "district": "pudong 13912345678"}
    named = decode_line(orjson.dumps({"topic": "sampling", "value": value}))
    unnamed = decode_line(orjson.dumps({"topic": "13912345678", "value": VALID["sampling"]}))
    # then the first is refused for the sampling topic, the second for no topic at all
    assert isinstance(named, tuple) and named[0] == "sampling"
    assert isinstance(named[1], Rejection) and named[1].reason == "raw_identifier"
    assert isinstance(unnamed, Rejection) and unnamed.reason == "raw_identifier"


# --- v1.1 topics: the rules a schema cannot say ---------------------------------------------


@pytest.mark.parametrize("closes_at", ["2022-04-02T06:00:00+08:00", "2022-04-01T22:00:00Z",
                                       "2022-04-02T05:59:59+08:00"])
def test_a_round_that_does_not_close_after_it_opens_is_invalid(closes_at: str) -> None:
    raw = orjson.dumps({**V11_EVENTS["round"], "closes_at": closes_at})
    result = decode_event("round", raw, default_policy().cohorts)
    assert isinstance(result, Rejection) and result.reason == "invalid_value"
    assert result.message.startswith("closes_at:")


def test_a_round_closing_one_second_after_it_opens_is_valid() -> None:
    raw = orjson.dumps({**V11_EVENTS["round"], "closes_at": "2022-04-02T06:00:01+08:00"})
    assert isinstance(decode_event("round", raw, default_policy().cohorts), Round)


def test_a_round_of_a_cohort_the_policy_does_not_define_is_refused() -> None:
    raw = orjson.dumps({**V11_EVENTS["round"], "cohort": "astronauts"})
    result = decode_event("round", raw, default_policy().cohorts)
    assert isinstance(result, Rejection) and result.reason == "unknown_cohort"
    raw = orjson.dumps({**V11_EVENTS["round"], "cohort": "courier"})
    assert isinstance(decode_event("round", raw, default_policy().cohorts), Round)


@pytest.mark.parametrize("districts, reason", [([], "invalid_value"), (["a\nb"], "invalid_value"),
                                               ("pudong", "wrong_type")])
def test_a_rounds_districts_are_a_non_empty_list_of_names(districts: Any, reason: str) -> None:
    raw = orjson.dumps({**V11_EVENTS["round"], "districts": districts})
    result = decode_event("round", raw, default_policy().cohorts)
    assert isinstance(result, Rejection) and result.reason == reason


def test_a_checkpoint_without_proof_is_valid_but_its_proof_field_is_required() -> None:
    shown = orjson.dumps({**V11_EVENTS["checkpoint"], "proof_sampled_at": None})
    decoded = decode_event("checkpoint", shown)
    assert isinstance(decoded, Checkpoint) and decoded.proof_sampled_at is None
    absent = {k: v for k, v in V11_EVENTS["checkpoint"].items() if k != "proof_sampled_at"}
    result = decode_event("checkpoint", orjson.dumps(absent))
    assert isinstance(result, Rejection) and result.reason == "missing_field"


def test_a_repeated_key_is_found_beside_a_null_proof_and_a_list() -> None:
    # The fast repeated-key filter counts the strings a decoded event proves: a null proof
    # and the items of visited must be counted exactly, or a repeat could slip through.
    event = {**V11_EVENTS["checkpoint"], "proof_sampled_at": None}
    raw = orjson.dumps(event)[:-1] + b',"role":"passenger"}'
    result = decode_event("checkpoint", raw)
    assert isinstance(result, Rejection) and result.reason == "duplicate_key"


@pytest.mark.parametrize("field, value, reason", [
    ("level", "severe", "unknown_enum"), ("county", "a" * 33, "invalid_value"),
])
def test_an_area_needs_a_known_level_and_a_county_code(field: str, value: str,
                                                       reason: str) -> None:
    raw = orjson.dumps({**V11_EVENTS["area"], field: value})
    result = decode_event("area", raw)
    assert isinstance(result, Rejection) and result.reason == reason


def test_a_proof_more_than_366_days_from_the_entry_is_implausible() -> None:
    raw = orjson.dumps({**V11_EVENTS["checkpoint"], "proof_sampled_at": "2020-01-01T00:00:00Z"})
    result = decode_event("checkpoint", raw)
    assert isinstance(result, Rejection) and result.reason == "implausible_time"


@pytest.mark.parametrize("junk", [b"\xc0\xaf", b"\xff", b"\xed\xa0\x80"])
def test_broken_utf8_in_a_key_nobody_reads_is_not_json(junk: bytes) -> None:
    # msgspec skips the bytes of an unknown key unread; the line is still not JSON
    value = orjson.dumps(VALID["sampling"])[:-1] + b',"x' + junk + b'y":1}'
    result = decode_event("sampling", value, default_policy().cohorts)
    assert isinstance(result, Rejection) and result.reason == "not_json"
    line = b'{"topic":"sampling","value":' + value + b"}"
    decoded = decode_line(line, default_policy().cohorts)
    assert isinstance(decoded, Rejection) and decoded.reason == "not_json"


@pytest.mark.parametrize("offset", ["+08:00", "Z", "-05:30"])
def test_the_upper_bound_holds_to_the_microsecond_in_every_offset(offset: str) -> None:
    """The fast path compares fields in the event's own offset; it must agree with the exact
    arithmetic right at a receipt with a fraction of a second."""
    receipt = datetime(2022, 9, 6, 12, 0, 0, 250_000, tzinfo=UTC).timestamp()
    limit = receipt + 900
    zone = UTC if offset == "Z" else datetime.fromisoformat(f"2022-09-06T00:00:00{offset}").tzinfo
    for micros in (-2_000_001, -1_000_000, -250_001, -1, 0, 1, 750_000):
        instant = datetime.fromtimestamp(limit, zone) + timedelta(microseconds=micros)
        line = line_of("followup", event("followup", occurred_at=instant.isoformat()))
        result = decode_line(line, received_at=receipt)
        assert isinstance(result, tuple)
        assert isinstance(result[1], Followup) is (instant.timestamp() <= limit), micros
