"""Contract v1.2 §1, receipt per record: a replay line's own ``received_at`` and a Kafka
record's ``received_at`` header, as the decoder reads, bounds and hands them over.

A line's receipt replaces the run's as the bound of its event's times; it may itself be no
more than ``max_clock_skew`` after the run's receipt; it is parsed like every timestamp; and
``decode_line(..., with_receipt=True)`` gives it back (None when the line has none: its entry
lag is unknown).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop.schemas.decode import (
    Rejection,
    dead_letter,
    decode_event,
    decode_line,
    header_receipt,
    header_value,
)
from closedloop.schemas.events import Lab
from closedloop.schemas.outputs import REJECTION_REASONS

RUN = datetime(2022, 9, 6, 12, 0, tzinfo=UTC)  # the run's own receipt: 20:00 +08:00
SKEW = timedelta(minutes=15)
LAB: dict[str, Any] = {
    "event_id": "lab-1", "occurred_at": "2022-09-06T09:00:00+08:00", "tube_id": "tb-1",
    "lab_id": "lab-7", "status": "received",
}
RECEIVED = "2022-09-06T10:30:00+08:00"  # the lab entered it an hour and a half after


def line(value: dict[str, Any] | None = None, **envelope: Any) -> bytes:
    return orjson.dumps({"topic": "lab", **envelope, "value": value or LAB})


def read(raw: bytes, run: datetime | None = RUN) -> Any:
    return decode_line(raw, received_at=None if run is None else run.timestamp(),
                       with_receipt=True)


def rejected(raw: bytes, run: datetime | None = RUN) -> Rejection:
    result = read(raw, run)
    assert isinstance(result, tuple), result
    topic, event, _ = result
    assert topic == "lab"  # the dead letter says where the line was going
    assert isinstance(event, Rejection), event
    return event


class TestAReplayLinesOwnReceipt:
    def test_is_handed_over_beside_the_event(self) -> None:
        topic, event, receipt = read(line(received_at=RECEIVED))
        assert (topic, type(event)) == ("lab", Lab)
        assert receipt == datetime.fromisoformat(RECEIVED)

    def test_a_line_without_one_has_none_and_its_lag_is_unknown(self) -> None:
        assert read(line())[2] is None
        # null is no receipt, as null is no value for every optional field
        _topic, event, receipt = read(line(received_at=None))
        assert isinstance(event, Lab) and receipt is None

    def test_decode_line_gives_topic_and_event_as_before(self) -> None:
        result = decode_line(line(received_at=RECEIVED), received_at=RUN.timestamp())
        assert isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Lab)

    def test_is_parsed_with_every_timestamps_rules(self) -> None:
        # RFC 3339 with an offset; a Z offset is UTC
        assert read(line(received_at="2022-09-06T02:30:00Z"))[2] == datetime.fromisoformat(
            RECEIVED)

    @pytest.mark.parametrize(("given", "reason"), [
        ("2022-09-06T10:30:00", "naive_timestamp"),
        ("2022-09-06 10:30:00", "naive_timestamp"),
        ("yesterday", "invalid_timestamp"),
        ("2022-02-30T10:30:00+08:00", "invalid_timestamp"),
        (1662431400, "wrong_type"),
        (["2022-09-06T10:30:00+08:00"], "wrong_type"),
    ], ids=["naive", "naive-with-space", "text", "no-such-day", "number", "list"])
    def test_a_bad_one_is_refused_naming_received_at(self, given: Any, reason: str) -> None:
        rejection = rejected(line(received_at=given))
        assert rejection.reason == reason
        assert rejection.message.startswith("received_at:")

    def test_a_bad_one_wins_over_a_bad_event(self) -> None:
        # the envelope is read before the event it carries
        rejection = rejected(line({**LAB, "status": "lost"}, received_at="yesterday"))
        assert rejection.reason == "invalid_timestamp"

    def test_up_to_max_clock_skew_after_the_runs_receipt_is_plausible(self) -> None:
        at_limit = (RUN + SKEW).isoformat()
        assert isinstance(read(line(received_at=at_limit))[1], Lab)
        beyond = (RUN + SKEW + timedelta(microseconds=1)).isoformat()
        rejection = rejected(line(received_at=beyond))
        assert rejection.reason == "implausible_time"
        assert rejection.message.startswith("received_at:")
        assert "max_clock_skew" in rejection.message

    def test_the_bound_holds_in_another_offset(self) -> None:
        limit = (RUN + SKEW).astimezone(datetime.fromisoformat("2022-01-01T00:00-05:30").tzinfo)
        assert isinstance(read(line(received_at=limit.isoformat()))[1], Lab)
        later = (limit + timedelta(seconds=1)).isoformat()
        assert rejected(line(received_at=later)).reason == "implausible_time"

    def test_without_a_run_receipt_nothing_bounds_it(self) -> None:
        far = "2030-01-01T00:00:00+08:00"
        assert isinstance(read(line(received_at=far), run=None)[1], Lab)

    def test_it_bounds_the_events_times_instead_of_the_runs(self) -> None:
        # given a line received 10 minutes after the run's receipt (plausible)
        own = RUN + timedelta(minutes=10)
        # an event 20 minutes after the run's receipt is within the line's own + 15 min
        occurred = (RUN + timedelta(minutes=20)).isoformat()
        ok = read(line({**LAB, "occurred_at": occurred}, received_at=own.isoformat()))
        assert isinstance(ok[1], Lab)
        # and an event more than 15 min after the line's own receipt is implausible, though
        # long before the run's
        early = (RUN - timedelta(hours=3)).isoformat()
        late = (RUN - timedelta(hours=3) + SKEW + timedelta(seconds=1)).isoformat()
        rejection = rejected(line({**LAB, "occurred_at": late}, received_at=early))
        assert rejection.reason == "implausible_time"
        assert rejection.message.startswith("occurred_at:") and "received_at" in rejection.message
        at_limit = (RUN - timedelta(hours=3) + SKEW).isoformat()
        assert isinstance(read(line({**LAB, "occurred_at": at_limit}, received_at=early))[1],
                          Lab)

    def test_a_receipt_long_after_the_event_is_a_late_entry_not_bad_input(self) -> None:
        # a roster record entered two years late is late, and still counts
        old = {**LAB, "occurred_at": "2020-09-06T09:00:00+08:00"}
        assert isinstance(read(line(old, received_at=RECEIVED))[1], Lab)

    @pytest.mark.parametrize("given", [
        "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2000-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
    ])
    def test_an_extreme_receipt_never_raises(self, given: str) -> None:
        for run in (RUN, None):
            result = read(line(received_at=given), run)
            assert isinstance(result, tuple)
            assert isinstance(result[1], Lab | Rejection)

    def test_a_receipt_before_the_event_by_more_than_the_skew_makes_it_implausible(
            self) -> None:
        # an entry cannot precede its event: the event is then the implausible part
        rejection = rejected(line(received_at="2022-09-06T08:44:59+08:00"))
        assert rejection.reason == "implausible_time"
        assert rejection.message.startswith("occurred_at:")
        assert isinstance(read(line(received_at="2022-09-06T08:45:00+08:00"))[1], Lab)

    def test_given_twice_is_a_repeated_key(self) -> None:
        raw = line(received_at=RECEIVED)[:-1] + b',"received_at":"2022-09-06T11:00:00+08:00"}'
        assert rejected(raw).reason == "duplicate_key"
        assert rejected(raw).message.startswith("received_at:")

    def test_a_repeated_key_in_the_event_is_still_found_beside_it(self) -> None:
        value = orjson.dumps(LAB)[:-1] + b',"status":"reported"}'
        raw = b'{"topic":"lab","received_at":"' + RECEIVED.encode() + b'","value":' + value + b"}"
        assert rejected(raw).reason == "duplicate_key"

    def test_a_raw_identifier_in_it_wins_and_is_redacted(self) -> None:
        raw = line(received_at="2022-09-06T10:30:00+08:00 13812345678")
        result = read(raw)
        rejection = result[1] if isinstance(result, tuple) else result
        assert isinstance(rejection, Rejection) and rejection.reason == "raw_identifier"
        assert "13812345678" not in dead_letter(rejection, raw).original

    def test_the_slow_path_gives_the_receipt_too(self) -> None:
        # a line with white space between its tokens takes the per-field checks
        raw = b'{"topic": "lab", "received_at": "' + RECEIVED.encode() + b'", "value": ' + \
            orjson.dumps(LAB) + b"}"
        _, event, receipt = read(raw)
        assert isinstance(event, Lab) and receipt == datetime.fromisoformat(RECEIVED)
        # and a line msgspec refuses (an escaped key) reads it on the orjson path
        escaped = raw.replace(b'"received_at"', b'"received\\u005fat"')
        _topic, event, receipt = read(escaped)
        assert isinstance(event, Lab) and receipt == datetime.fromisoformat(RECEIVED)


class TestAKafkaRecordsReceiptHeader:
    def test_produce_writes_the_lines_receipt_or_none(self) -> None:
        receipt = datetime.fromisoformat(RECEIVED)
        assert header_value(receipt) == RECEIVED.encode()
        assert header_value(None) == b"none"

    def test_the_worker_reads_it_back(self) -> None:
        receipt = datetime.fromisoformat(RECEIVED)
        assert header_receipt(header_value(receipt)) == receipt
        assert header_receipt(b"none") is None

    @pytest.mark.parametrize(("value", "reason"), [
        (b"2022-09-06T10:30:00", "naive_timestamp"), (b"soon", "invalid_timestamp"),
        (b"\xff\xfe", "invalid_timestamp"), (b"", "invalid_timestamp"),
        (b"13812345678", "raw_identifier"), (b"None", "invalid_timestamp"),
    ])
    def test_a_bad_header_has_its_reason_and_never_repeats_it(self, value: bytes,
                                                              reason: str) -> None:
        rejection = header_receipt(value)
        assert isinstance(rejection, Rejection) and rejection.reason == reason
        assert rejection.message.startswith("received_at header")
        assert "13812345678" not in rejection.message

    def test_decode_event_bounds_the_event_by_the_headers_receipt(self) -> None:
        raw = orjson.dumps(LAB)
        own = datetime.fromisoformat(RECEIVED)
        assert isinstance(decode_event("lab", raw, received_at=RUN.timestamp(), receipt=own),
                          Lab)
        early = datetime.fromisoformat("2022-09-06T08:44:59+08:00")
        before = decode_event("lab", raw, received_at=RUN.timestamp(), receipt=early)
        assert isinstance(before, Rejection) and before.reason == "implausible_time"
        future = RUN + SKEW + timedelta(seconds=1)
        after = decode_event("lab", raw, received_at=RUN.timestamp(), receipt=future)
        assert isinstance(after, Rejection) and after.message.startswith("received_at:")


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=40),
                 st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
                 st.lists(st.text(max_size=5), max_size=2)))
def test_any_received_at_is_read_or_refused_never_raised(given: Any) -> None:
    result = read(line(received_at=given))
    event = result[1] if isinstance(result, tuple) else result
    if isinstance(event, Rejection):
        assert event.reason in REJECTION_REASONS
    else:
        assert isinstance(event, Lab)
