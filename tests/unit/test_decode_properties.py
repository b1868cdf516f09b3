"""Properties of the decoder over generated input (hypothesis): it never raises, every refusal
has a contract reason, a raw identifier anywhere is always the reason, and no dead-letter copy
keeps one. The replay-level suite is tests/replay/test_hostile_input.py."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop.schemas.decode import Rejection, dead_letter, decode_event, decode_line
from closedloop.schemas.events import MODELS
from closedloop.schemas.identifiers import contains_raw
from closedloop.schemas.outputs import REJECTION_REASONS

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

SAMPLING: dict[str, Any] = {
    "event_id": "smp-1", "occurred_at": "2022-09-06T09:30:00+08:00",
    "person_id": "pz:0f8e7d6c5b4a3928", "tube_id": "T20220906-0001", "site_id": "site-1",
    "district": "haidian", "pool_size": 10,
}
# raw identifiers as a broken device or an attacker might write them
RAW = st.sampled_from([
    "13812345678", "+8613812345678", "008613812345678", "11010119900307123X",
    "110101199003071234", "１３８１２３４５６７８", "tb-13912345678", "pudong 13912345678",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False),
                    st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def _encoded(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _mutated(field: str, value: Any) -> dict[str, Any]:
    return {**SAMPLING, field: value}


def _strings(node: Any) -> list[str]:
    """Every string of a JSON document, keys included (numbers are not strings, §2)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _leaks(text: str) -> bool:
    """A raw identifier in ``text``: in its strings if it is JSON, else anywhere."""
    try:
        return any(contains_raw(s) for s in _strings(orjson.loads(text)))
    except (orjson.JSONDecodeError, RecursionError):
        return contains_raw(text)


def _assert_well_refused(decoded: object, original: bytes) -> None:
    """Any result is a valid event or a contract reason, and its dead letter leaks nothing."""
    rejection = decoded[1] if isinstance(decoded, tuple) else decoded
    if isinstance(rejection, Rejection):
        assert rejection.reason in REJECTION_REASONS
        assert not contains_raw(rejection.message)
        letter = dead_letter(rejection, original)
        text = letter.original
        if letter.original_encoding == "base64":
            text = base64.b64decode(letter.original).decode("utf-8", "replace")
        assert not _leaks(text) and not contains_raw(letter.message)
    else:
        assert type(rejection) in MODELS.values()


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_a_line_are_decoded_or_refused_never_raised(line: bytes) -> None:
    _assert_well_refused(decode_line(line), line)


@SETTINGS
@given(st.sampled_from(sorted(MODELS)), JSON)
def test_any_json_as_an_event_value_is_decoded_or_refused(topic: str, value: Any) -> None:
    raw = _encoded(value)
    _assert_well_refused(decode_event(topic, raw), raw)
    line = _encoded({"topic": topic, "value": value})
    _assert_well_refused(decode_line(line), line)


@SETTINGS
@given(st.sampled_from(sorted(SAMPLING)), JSON)
def test_a_mutated_field_of_a_good_event_is_decoded_or_refused(field: str, value: Any) -> None:
    line = _encoded({"topic": "sampling", "value": _mutated(field, value)})
    _assert_well_refused(decode_line(line), line)


@SETTINGS
@given(st.sampled_from([*sorted(SAMPLING), "extra", "note"]), RAW, st.booleans())
def test_a_raw_identifier_in_any_value_or_key_is_always_the_reason(
    field: str, raw: str, as_key: bool
) -> None:
    # given a good sampling with a raw identifier as a value, or as an extra key
    value = {**SAMPLING, raw: 1} if as_key else _mutated(field, f"x {raw} y")
    line = _encoded({"topic": "sampling", "value": value})
    decoded = decode_line(line)
    # then it is refused as raw_identifier, whatever else is wrong, and redacted everywhere
    rejection = decoded[1] if isinstance(decoded, tuple) else decoded
    assert isinstance(rejection, Rejection) and rejection.reason == "raw_identifier"
    _assert_well_refused(decoded, line)
