"""A Kafka record's receipt (contract v1.2 §1): the ``received_at`` header, else the record
timestamp capped at now; the entry lag known only from the record's own receipt."""

from __future__ import annotations

from datetime import datetime

import pytest

from closedloop.schemas.decode import Rejection
from closedloop.streams.kafka.receipts import Receipt, record_receipt

NOW = datetime.fromisoformat("2022-09-06T12:00:00+08:00").timestamp()
SKEW = 900


def receipt(headers: list[tuple[str, bytes]] | None, timestamp_ms: int | None = None
            ) -> Receipt | Rejection:
    return record_receipt(headers, timestamp_ms, NOW, SKEW)


def test_without_the_header_the_timestamp_is_the_receipt_and_the_lag_is_known() -> None:
    sent = int(NOW) - 600
    assert receipt(None, sent * 1000) == Receipt(sent, None, sent)
    assert receipt([("other", b"x")], sent * 1000) == Receipt(sent, None, sent)


def test_a_timestamp_after_now_is_capped_at_now() -> None:
    assert receipt([], int(NOW + 3600) * 1000) == Receipt(NOW, None, int(NOW))


def test_without_header_or_timestamp_nothing_is_known() -> None:
    assert receipt(None, None) == Receipt(None, None, None)
    assert receipt(None, -1) == Receipt(None, None, None)


def test_a_header_none_keeps_the_timestamp_as_bound_but_the_lag_is_unknown() -> None:
    sent = int(NOW) - 60
    assert receipt([("received_at", b"none")], sent * 1000) == Receipt(sent, None, None)


def test_the_headers_instant_is_the_receipt() -> None:
    got = receipt([("received_at", b"2022-09-06T09:20:00+08:00")], int(NOW) * 1000)
    own = datetime.fromisoformat("2022-09-06T09:20:00+08:00")
    assert got == Receipt(NOW, own, int(own.timestamp()))


def test_a_header_exactly_max_clock_skew_after_now_is_plausible_one_second_more_is_not(
) -> None:
    at_skew = datetime.fromtimestamp(NOW + SKEW).astimezone().isoformat().encode()
    beyond = datetime.fromtimestamp(NOW + SKEW + 1).astimezone().isoformat().encode()
    assert isinstance(receipt([("received_at", at_skew)]), Receipt)
    refused = receipt([("received_at", beyond)])
    assert isinstance(refused, Rejection) and refused.reason == "implausible_time"
    assert refused.message.startswith("received_at header: ")


@pytest.mark.parametrize(("value", "reason"), [
    (b"2022-09-06T09:20:00", "naive_timestamp"),  # no offset
    (b"yesterday", "invalid_timestamp"),
    (b"\xff\xfe", "invalid_timestamp"),  # not UTF-8
    (b"13912345678", "raw_identifier"),
    (b"", "invalid_timestamp"),
])
def test_a_header_that_is_no_instant_rejects_the_record(value: bytes, reason: str) -> None:
    refused = receipt([("received_at", value)], int(NOW) * 1000)
    assert isinstance(refused, Rejection) and refused.reason == reason
    assert "13912345678" not in refused.message


def test_a_repeated_header_rejects_the_record() -> None:
    refused = receipt([("received_at", b"none"), ("received_at", b"none")])
    assert isinstance(refused, Rejection) and refused.reason == "duplicate_key"
