"""The floor: what every line costs before any rule runs, measured beside replay.

A ratio target for replay (issue 9's, issue 11's) is only reachable if the work the contract
makes every line pay leaves room for the rules. This pass does that work and nothing else:
decode the line into its typed event with every check of the contract (raw identifiers,
duplicate keys, schema, plausible times), the event's time, the clock, de-duplication by
``event_id`` (CONTRACT.md §3), the key interned, its keyed state looked up and written back.
No rule, no deadline, no output. Replay does all of it and more (a sampling updates a tube and
a person, a pooled result ten persons), so replay never runs faster than the floor: a target
above the floor's own ratio cannot be met by tuning the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from sys import intern

from closedloop.schemas.decode import Rejection, decode_line
from closedloop.schemas.events import KEY_FIELD
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import Watermark
from closedloop.streams.engine.dedup import Dedup
from closedloop.streams.engine.gc_tuning import for_throughput

__all__ = ["floor_pass"]


def floor_pass(lines: Iterable[bytes], policy: Policy, received_at: float | None = None
               ) -> Counter[str]:
    """Run the floor over ``lines``; counts ``applied``, ``duplicates``, ``blank`` and
    ``rejected:<reason>`` (the rejections decoding finds, which replay finds too)."""
    counts: Counter[str] = Counter()
    clock = Watermark(policy.allowed_lateness)
    dedup = Dedup(policy.dedup_retention)
    table: dict[str, int] = {}  # a key's "state": the time of its latest event
    cohorts, skew = policy.cohorts, policy.max_clock_skew
    with for_throughput():
        for raw in lines:
            if not raw.strip():
                counts["blank"] += 1
                continue
            decoded = decode_line(raw.rstrip(b"\r\n"), cohorts, received_at=received_at,
                                  max_clock_skew=skew)
            if isinstance(decoded, Rejection):
                counts[f"rejected:{decoded.reason}"] += 1
                continue
            topic, event = decoded
            if isinstance(event, Rejection):
                counts[f"rejected:{event.reason}"] += 1
                continue
            at = epoch_seconds(event.occurred_at)
            if dedup.seen(topic, event.event_id, at, clock.value):
                counts["duplicates"] += 1
                continue
            clock.observe(at)
            key = intern(getattr(event, KEY_FIELD[topic]))
            latest = table.get(key)
            table[key] = at if latest is None or at > latest else latest
            counts["applied"] += 1
    return counts
