"""A Kafka record's receipt (CONTRACT.md v1.2 §1 "Receipt per record"), as the worker reads it.

A record's receipt is its ``received_at`` header when present (``closedloop produce`` writes
the envelope's ``received_at`` there, or ``none``), else its record timestamp, capped at now
(a producer's clock may set it). Two instants come out of that:

- the bound of the implausible-time rule: the header's instant, which may itself be no more
  than ``max_clock_skew`` after now; else the capped timestamp;
- the instant the **entry lag** is measured from, known only when the receipt came from the
  record itself: the header's instant, or the timestamp of a record without the header;
  never for a header ``none`` (the producer had no receipt: the timestamp is only when it
  sent the line).

A header that is no instant, a repeated header, or an implausible receipt rejects the record
(a dead letter with its reason), as replay rejects such a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from closedloop.schemas.decode import RECEIVED_AT_HEADER, Rejection, header_receipt
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.plausible import implausible_receipt

__all__ = ["Receipt", "record_receipt"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """How the worker knows when a record was received."""

    bound: float | None  # epoch seconds bounding the event's times (decode_event's received_at)
    own: datetime | None  # the header's instant (decode_event's receipt), else None
    lag_from: int | None  # epoch seconds the entry lag is measured from; None: lag unknown


def record_receipt(headers: Iterable[tuple[str, bytes]] | None, timestamp_ms: int | None,
                   now: float | None, max_clock_skew: int) -> Receipt | Rejection:
    """The receipt of a record with these headers and Kafka timestamp (milliseconds; None or
    not positive: unknown), read at wall-clock ``now`` (epoch seconds; None only on the
    in-memory bus of tests that leave the receipt's bound unchecked)."""
    stamped = None if timestamp_ms is None or timestamp_ms <= 0 else (
        timestamp_ms / 1000 if now is None else min(timestamp_ms / 1000, now))
    values = [value for key, value in headers or () if key == RECEIVED_AT_HEADER]
    if not values:
        return Receipt(stamped, None, None if stamped is None else int(stamped))
    if len(values) > 1:
        return Rejection("duplicate_key", "received_at header: given more than once")
    own = header_receipt(values[0] or b"")
    if isinstance(own, Rejection):
        return own
    if own is None:  # "none": sent without a receipt of its own
        return Receipt(stamped, None, None)
    why = implausible_receipt(own, now, max_clock_skew)
    if why is not None:
        return Rejection("implausible_time", "received_at header" + why[11:])
    return Receipt(now, own, epoch_seconds(own))
