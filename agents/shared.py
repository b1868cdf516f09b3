"""What every person partition must know whole: county risk levels (and testing rounds).

``area`` (key county) and ``round`` (key round_id) are small, and a rule about any person may
need any of them, so they are not keyed state: the embedded driver keeps one :class:`Shared`,
and on Kafka each person partition keeps its own copy, fed by a broadcast of every record
(see ``streams/engine/topology.py``). Applying a record is idempotent (a redelivered one
changes nothing), so a copy rebuilt from a replayed changelog equals the original.

A county's history is bounded, whatever its records: a county flapping between levels ten
times a second must cost each record O(log n), not a scan of everything before it. Two things
bound it. Levels are asked at whole seconds, so of the records of one second only the one
with the largest event_id can ever be the answer: it is the only one kept. And a county's
level at an instant more than ``keep`` (the policy's ``state_retention``, 8 days) before its
latest record is its level at the start of that window (an entry that old is a checkpoint
record more than 8 days late, judged on what the engine still holds, as a person idle that
long is forgotten), so the records before the one in force at the window's start are
dropped, in bulk once they are half the history (dropping one record a time would move the
whole list each time).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

import msgspec

from closedloop.schemas.events import Area, Round

__all__ = ["LEVEL_RANK", "AreaLevel", "RoundDef", "RoundRun", "Shared", "apply_area",
           "apply_round", "level_at"]

LEVEL_RANK: Final = {"low": 0, "medium": 1, "high": 2}


class AreaLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A county's level from ``at`` on (of records at one second, the larger event_id's)."""

    at: int
    event_id: str
    level: str


class RoundDef(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A ``round`` record as the rules need it (``districts`` None: every district)."""

    at: int  # occurred_at: a later record replaces this one (ties: the larger event_id)
    event_id: str
    opens: int
    closes: int
    districts: frozenset[str] | None
    cohort: str | None


class RoundRun(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A round and how far its reports went (agents/rounds.py)."""

    defn: RoundDef
    reported: int | None = None  # the as_of of the last progress report
    closed: bool = False  # the close was evaluated: later records for the round are ignored
    done: bool = False  # the final report was made
    # at the close: district -> [in_scope, sampled, not_on_roster], and the missed persons
    counts: dict[str, list[int]] | None = None
    missed: dict[str, str] | None = None  # person_id -> district of their round_missed
    # while open: progress instant -> its counts so far, moved as persons' facts change
    pending: dict[int, dict[str, list[int]]] | None = None


class Shared(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The broadcast facts one person partition holds (changelogged with it on Kafka)."""

    areas: dict[str, list[AreaLevel]] = {}  # county -> its records, sorted by at, one a second
    rounds: dict[str, RoundRun] = {}  # round_id -> the round in force and its progress


def apply_area(shared: Shared, event: Area, keep: int) -> bool:
    """Record a county's level from ``event.occurred_at`` on; False if it changes nothing
    (already known, or beaten at its second by a record with a larger event_id). ``keep``:
    how long before the county's latest record levels are kept exactly."""
    at = int(event.occurred_at.timestamp())
    history = shared.areas.setdefault(event.county, [])
    index = bisect_left(history, at, key=_at)
    entry = AreaLevel(at, event.event_id, event.level)
    if index < len(history) and history[index].at == at:
        if history[index].event_id >= event.event_id:
            return False
        history[index] = entry
    else:
        history.insert(index, entry)
    start = bisect_right(history, history[-1].at - keep, key=_at) - 1
    if start > len(history) // 2:  # the record in force at the window's start stays
        del history[:start]
    return True


def apply_round(shared: Shared, event: Round) -> bool:
    """Take a round, or a replacement of one not yet closed; False if ignored.

    A replacement wins if its occurred_at is later (ties: the larger event_id) and the round
    it replaces has not closed yet (the clock has not passed its closes_at before this record
    was applied); after the close every record for the round is ignored.
    """
    districts = None if "*" in event.districts else frozenset(event.districts)
    defn = RoundDef(int(event.occurred_at.timestamp()), event.event_id,
                    int(event.opens_at.timestamp()), int(event.closes_at.timestamp()),
                    districts, event.cohort)
    run = shared.rounds.get(event.round_id)
    if run is None:
        shared.rounds[event.round_id] = RoundRun(defn=defn)
        return True
    if run.closed or (defn.at, defn.event_id) <= (run.defn.at, run.defn.event_id):
        return False
    run.defn = defn
    return True


def level_at(shared: Shared, county: str, instant: int, keep: int) -> str:
    """The county's level at ``instant`` (at the latest ``keep`` before its latest record):
    its latest record at or before it, else low."""
    history = shared.areas.get(county)
    if not history:
        return "low"
    index = bisect_right(history, max(instant, history[-1].at - keep), key=_at)
    return history[index - 1].level if index else "low"


def _at(entry: AreaLevel) -> int:
    return entry.at
