"""A replay line as ``produce`` publishes it: blank, refused (in replay's words), or a record."""

from __future__ import annotations

import orjson
import pytest

from closedloop.schemas.events import KEY_FIELD
from closedloop.streams.engine.envelopes import Publishable, Refused, blank, publishable


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"topic": "sampling", "value": {"event_id": ', "not_json"),  # cut short
    (b"[1, 2]", "not_object"),
    (b'{"value": {}}', "bad_envelope"),
    (b'{"topic": "vaccination", "value": {}}', "bad_envelope"),
])
def test_a_line_that_is_no_envelope_is_refused_with_replays_reason(
    line: bytes, reason: str
) -> None:
    # produce said bad_envelope for a line replay calls not_json
    refused = publishable(line)
    assert isinstance(refused, Refused) and refused.rejection.reason == reason


def test_only_json_white_space_is_blank() -> None:
    assert blank(b"") and blank(b" \t\r\n")
    assert not blank(b"\x0c") and not blank(b"\x0b ")
    assert publishable(b"  \r\n") is None
    assert isinstance(publishable(b"\x0c"), Refused)


def test_a_good_line_is_its_topic_key_and_value() -> None:
    line = (b'{"topic": "followup", "value": {"event_id": "e1", "occurred_at": '
            b'"2022-09-06T09:00:00+08:00", "person_id": "pp-00001", "kind": "visit"}}')
    record = publishable(line)
    assert isinstance(record, Publishable)
    assert (record.topic, record.key) == ("followup", b"pp-00001")


@pytest.mark.parametrize("topic", sorted(KEY_FIELD))
def test_every_input_topic_is_keyed_by_its_contract_field(topic: str) -> None:
    field = KEY_FIELD[topic]
    line = orjson.dumps({"topic": topic, "value": {"event_id": "e1", field: "unit-0001"}})
    record = publishable(line)
    assert isinstance(record, Publishable)
    assert (record.topic, record.key) == (topic, b"unit-0001")


def test_an_inspection_is_keyed_by_its_unit() -> None:
    line = (b'{"topic": "inspection", "value": {"event_id": "i1", "occurred_at": '
            b'"2022-09-06T09:00:00+08:00", "unit_id": "venue-17", "unit_kind": "venue", '
            b'"district": "xuhui", "record": "rectified", "finding_id": "f-1"}}')
    record = publishable(line)
    assert isinstance(record, Publishable) and record.key == b"venue-17"
