"""A replay line as ``produce`` publishes it: blank, refused (in replay's words), or a record."""

from __future__ import annotations

import pytest

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
