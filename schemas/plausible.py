"""Implausible times (CONTRACT.md §1, v1.1): one wrong clock must not move the watermark.

An ``occurred_at`` before 2000-01-01T00:00:00Z or later than the event's receipt plus
``max_clock_skew``, or any other timestamp of the event more than 366 days away from its
``occurred_at``, is bad input (reason ``implausible_time``). *v1.2*: a record may carry its
own receipt (a replay line's ``received_at``, a Kafka record's header); the event's upper
bound is then that receipt, and the receipt itself may be no more than ``max_clock_skew``
after the run's own. No timestamp msgspec accepts (year 1 to 9999, any offset) can raise here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from math import floor
from typing import Final

import msgspec

from closedloop.schemas.events import MODELS, Event

__all__ = [
    "DEFAULT_MAX_CLOCK_SKEW",
    "EARLIEST",
    "MAX_SPREAD",
    "OTHER_TIMES",
    "implausible",
    "implausible_receipt",
]

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SPREAD: Final = timedelta(days=366)
DEFAULT_MAX_CLOCK_SKEW: Final = 15 * 60  # seconds
_EARLIEST: Final = EARLIEST.timestamp()
_SPREAD: Final = MAX_SPREAD.total_seconds()

# The timestamps of each model besides occurred_at (a travel's arrived_at).
OTHER_TIMES: Final = {
    model: tuple(
        field.name for field in msgspec.structs.fields(model)
        if field.name != "occurred_at" and "datetime" in str(field.type)
    )
    for model in MODELS.values()
}


@lru_cache(maxsize=64)
def _surely_before(minute: float, tz: tzinfo | None) -> datetime | None:
    """The instant a second before ``minute`` (whole minutes of epoch time) in ``tz`` (a
    fixed offset, as msgspec decodes), or None: an occurred_at in ``tz`` earlier than it is
    within an upper bound at or after that minute, decided by comparing fields (same
    tzinfo) instead of converting (~1.7 µs). Keyed by the minute, not the bound itself, so
    that a worker, whose every record has its own receipt, still finds it cached."""
    if type(tz) is not timezone:
        return None
    try:
        return datetime.fromtimestamp(floor(minute) * 60 - 1, tz)
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=16)
def _skew(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


@lru_cache(maxsize=64)
def _instant_in(seconds: float, tz: tzinfo | None) -> datetime | None:
    """``seconds`` (epoch) as an instant in ``tz`` (a fixed offset, as msgspec decodes), or
    None. An instant in the same tzinfo compares with it field by field (~0.1 µs) instead of
    through ``timestamp()`` (~0.7 µs); a run's own receipt is one bound for all its lines."""
    if type(tz) is not timezone:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz)
    except (OverflowError, OSError, ValueError):
        return None


def implausible_receipt(
    receipt: datetime, received_at: float | None, max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW
) -> str | None:
    """Why a record's own receipt (``received_at`` of a replay line or a Kafka header) is
    implausible, or None: more than ``max_clock_skew`` after ``received_at``, the run's own
    receipt in epoch seconds (None: unknown, nothing to compare with)."""
    if received_at is None:
        return None
    bound = received_at + max_clock_skew
    mark = _instant_in(bound, receipt.tzinfo)
    later = receipt > mark if mark is not None else receipt.timestamp() > bound
    if later:
        return (f"received_at: {receipt.isoformat()} is more than {max_clock_skew} s after "
                "this run received it (max_clock_skew)")
    return None


def implausible(
    event: Event,
    received_at: float | None,
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW,
    receipt: datetime | None = None,
) -> str | None:
    """Why ``event``'s times are implausible (a message naming the field), or None.

    ``received_at`` is the receipt in epoch seconds; None skips the upper bound (a caller
    that does not know when the event was received). ``receipt``, when the record carries
    its own, is the receipt instead (``received_at`` then plays no part here: see
    :func:`implausible_receipt`). ``datetime.timestamp`` of an aware datetime is a
    subtraction in C that never overflows, and exact to the microsecond here.
    """
    occurred = event.occurred_at
    if receipt is not None:
        try:
            late = occurred > receipt + _skew(max_clock_skew)
        except OverflowError:  # a receipt at the end of the calendar bounds nothing
            late = False
        if late:
            return (f"occurred_at: {occurred.isoformat()} is more than {max_clock_skew} s "
                    f"after the record's received_at {receipt.isoformat()} (max_clock_skew)")
        received_at = None  # the upper bound is settled
    if occurred.year > 2000 and not OTHER_TIMES[type(event)]:
        # the common cases, decided without the costlier instant arithmetic
        if received_at is None:
            return None
        before = _surely_before((received_at + max_clock_skew) // 60, occurred.tzinfo)
        if before is not None and occurred < before:
            return None
    at = event.occurred_at.timestamp()
    if at < _EARLIEST:
        return f"occurred_at: {event.occurred_at.isoformat()} is before 2000-01-01T00:00:00Z"
    if received_at is not None and at > received_at + max_clock_skew:
        return (f"occurred_at: {event.occurred_at.isoformat()} is more than {max_clock_skew} s "
                "after the event was received (max_clock_skew)")
    for name in OTHER_TIMES[type(event)]:
        value = getattr(event, name)
        if value is not None and abs(value.timestamp() - at) > _SPREAD:
            return f"{name}: {value.isoformat()} is more than 366 days from occurred_at"
    return None
