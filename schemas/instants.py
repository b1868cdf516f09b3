"""An instant's epoch seconds, as ``int(instant.timestamp())`` gives them, at a third of the cost.

``datetime.timestamp()`` of an aware datetime calls its tzinfo's ``utcoffset`` twice through
Python's method lookup (~1.4 µs); every input event needs its time once. Subtracting an epoch
expressed in the instant's own fixed offset ignores the offsets (same tzinfo) and is exact.

The seconds come back as one shared ``int`` object per recent instant (:func:`shared`): state
keeps millions of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timezone, tzinfo
from typing import Final

__all__ = ["RECENT", "epoch_seconds", "parse_instant", "recent_objects", "shared"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_IN: dict[tzinfo, datetime] = {}  # per fixed offset (msgspec decodes minutes: bounded)
_EXACT: Final = 1 << 32  # below it, int(float) of whole seconds plus microseconds truncates
RECENT: Final = 1 << 15  # the latest distinct instants always shared


def recent_objects(limit: int) -> Callable[[int], int]:
    """A function that gives an int back as the object already standing for an equal one,
    while it is recent: any of the last ``limit`` distinct values it was given, and at most
    twice as many (two tables: the newer fills, then the older one is dropped), so it stays
    small and follows the stream. A single table started anew when full would forget every
    value at once, those just seen too.

    An int above 256 is an object of 32 bytes: kept in state, a million equal ones would
    each hold their own copy."""
    newer: dict[int, int] = {}
    older: dict[int, int] = {}

    def one(value: int) -> int:
        nonlocal newer, older
        kept = newer.get(value)
        if kept is None:
            kept = older.get(value, value)
            if len(newer) >= limit:
                older, newer = newer, {}
            newer[kept] = kept
        return kept

    return one


shared: Final = recent_objects(RECENT)
"""``seconds`` as the int object already standing for that instant, while it is recent.

A city's facts bunch on few distinct seconds at a time (a round's roster records and their
gc deadlines on a few thousand for a million persons). It remembers the last ``RECENT``
instants at least (~2–4 MB): the worker's stages apply the same fact a batch apart (a
swab's tube, then its person from the tube's forward), up to 20,000 records and as many
instants, and a table of a few thousand, started anew between them, left the person a copy
of each instant the tube already held (~50 bytes a person of a round)."""


def epoch_seconds(instant: datetime) -> int:
    """``int(instant.timestamp())`` for an aware ``instant``, the same for every instant."""
    zone = instant.tzinfo
    epoch = _EPOCH_IN.get(zone) if zone is not None else None
    if epoch is None:
        if type(zone) is not timezone:  # a zone with rules (or naive): the exact way
            return shared(int(instant.timestamp()))
        epoch = _EPOCH_IN[zone] = _EPOCH.astimezone(zone)
    delta = instant - epoch
    seconds = delta.days * 86400 + delta.seconds  # floor of the exact seconds
    if 0 <= seconds < _EXACT or not delta.microseconds:
        return shared(seconds)
    # before 1970 int() truncates towards zero, and beyond 2^32 s the float may round up
    return shared(int(instant.timestamp()))


def parse_instant(text: str, zone: tzinfo | None = None) -> int:
    """RFC 3339 with an offset -> epoch seconds.

    A date or a time without offset is refused rather than guessed (``--until 2022-09-09``
    could mean either midnight of that day); the message names the instant to write instead,
    in ``zone`` (default: the contract's), which this function accepts as it is.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp "
                         "(write e.g. 2022-09-09T00:00:00+08:00)") from exc
    if value.tzinfo is None:
        if zone is None:
            from closedloop.schemas.policy import default_policy

            zone = default_policy().zone
        example = value.replace(tzinfo=zone).isoformat()
        raise ValueError(f"{text!r} has no UTC offset (write e.g. {example})")
    return int(value.timestamp())
