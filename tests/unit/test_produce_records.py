"""What ``closedloop produce`` makes of a replay line, before any broker: the record, its
``received_at`` header (contract v1.2 §1), or the dead letter's reason."""

from __future__ import annotations

import orjson
import pytest

from closedloop.streams.app.produce import to_send
from closedloop.streams.engine.envelopes import Refused

VALUE = {"event_id": "f1", "occurred_at": "2022-09-06T09:00:00+08:00",
         "person_id": "p:000000000001", "kind": "visit", "worker_id": "gw-1"}


def line(**envelope: object) -> bytes:
    return orjson.dumps({"topic": "followup", "value": VALUE, **envelope})


def test_the_envelopes_receipt_becomes_the_header_as_written() -> None:
    sending = to_send(line(received_at="2022-09-06T09:20:00+08:00"))
    assert not isinstance(sending, Refused) and sending is not None
    record, headers = sending
    assert (record.topic, record.key) == ("followup", b"p:000000000001")
    assert headers == [("received_at", b"2022-09-06T09:20:00+08:00")]


@pytest.mark.parametrize("envelope", [{}, {"received_at": None}])
def test_a_line_without_a_receipt_says_none(envelope: dict[str, object]) -> None:
    sending = to_send(line(**envelope))
    assert not isinstance(sending, Refused) and sending is not None
    assert sending[1] == [("received_at", b"none")]


def test_a_receipt_in_utc_keeps_its_instant() -> None:
    sending = to_send(line(received_at="2022-09-06T01:20:00Z"))
    assert not isinstance(sending, Refused) and sending is not None
    assert sending[1] == [("received_at", b"2022-09-06T01:20:00+00:00")]


@pytest.mark.parametrize(("receipt", "reason"), [
    ("2022-09-06T09:20:00", "naive_timestamp"),  # no offset
    ("none", "invalid_timestamp"),  # the header's word is no envelope value
    (1662427200, "wrong_type"),
])
def test_a_malformed_receipt_is_a_dead_letter(receipt: object, reason: str) -> None:
    refused = to_send(line(received_at=receipt))
    assert isinstance(refused, Refused)
    assert (refused.rejection.reason, refused.topic) == (reason, "followup")
    assert refused.rejection.message.startswith("received_at:")


def test_a_raw_identifier_anywhere_is_a_dead_letter_before_its_receipt_is_read() -> None:
    refused = to_send(line(received_at="13912345678"))
    assert isinstance(refused, Refused) and refused.rejection.reason == "raw_identifier"
    mobile = orjson.dumps({"topic": "followup", "value": {**VALUE, "worker_id": "13912345678"}})
    refused = to_send(mobile)
    assert isinstance(refused, Refused) and refused.rejection.reason == "raw_identifier"


def test_a_blank_line_sends_nothing() -> None:
    assert to_send(b"  \n") is None
