"""What every person partition must know whole: county risk levels (and testing rounds).

``area`` (key county) and ``round`` (key round_id) are small, and a rule about any person may
need any of them, so they are not keyed state: the embedded driver keeps one :class:`Shared`,
and on Kafka each person partition keeps its own copy, fed by a broadcast of every record
(see ``streams/engine/topology.py``). Applying a record is idempotent (a redelivered one
changes nothing), so a copy rebuilt from a replayed changelog equals the original.
"""

from __future__ import annotations

from bisect import insort
from typing import Final

import msgspec

from closedloop.schemas.events import Area, Round

__all__ = ["LEVEL_RANK", "AreaLevel", "Shared", "apply_area", "apply_shared", "level_at"]

LEVEL_RANK: Final = {"low": 0, "medium": 1, "high": 2}


class AreaLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A county's level from ``at`` on (ties between records at one instant: larger event_id)."""

    at: int
    event_id: str
    level: str


class Shared(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The broadcast facts one person partition holds (changelogged with it on Kafka)."""

    areas: dict[str, list[AreaLevel]] = {}  # county -> its records, sorted by (at, event_id)


def apply_area(shared: Shared, event: Area) -> bool:
    """Record a county's level from ``event.occurred_at`` on; False if already known."""
    entry = AreaLevel(int(event.occurred_at.timestamp()), event.event_id, event.level)
    history = shared.areas.setdefault(event.county, [])
    if entry in history:
        return False
    insort(history, entry, key=_order)
    return True


def apply_shared(shared: Shared, event: Area | Round) -> bool:
    """Apply a record of a shared topic; False if it changed nothing (already known)."""
    if isinstance(event, Area):
        return apply_area(shared, event)
    return False  # rounds: agents/rounds.py


def level_at(shared: Shared, county: str, instant: int) -> str:
    """The county's level at ``instant``: its latest record at or before it, else low."""
    level = "low"
    for entry in shared.areas.get(county, ()):
        if entry.at > instant:
            break
        level = entry.level
    return level


def _order(entry: AreaLevel) -> tuple[int, str]:
    return entry.at, entry.event_id
