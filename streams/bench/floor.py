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

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from sys import intern
from typing import Final

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context
from closedloop.agents.state import PersonState
from closedloop.schemas.decode import Rejection, decode_line
from closedloop.schemas.events import KEY_FIELD
from closedloop.schemas.instants import epoch_seconds
from closedloop.schemas.policy import Policy
from closedloop.streams.bench.interleave import CHUNK, parse_only
from closedloop.streams.engine.clock import Watermark
from closedloop.streams.engine.deadlines import DeadlineIndex
from closedloop.streams.engine.dedup import Dedup
from closedloop.streams.engine.envelopes import blank
from closedloop.streams.engine.gc_tuning import for_throughput
from closedloop.streams.engine.topology import Stage

__all__ = ["TARGET", "bare_step_parses", "ceiling", "floor_pass"]

TARGET: Final = 0.08
"""Issues 9 and 11: replay at 8% of orjson parse-only."""


class _Nothing:
    """An input no rule reads."""


def _no_rule(ctx: Context, st: PersonState, key: str, item: _Nothing) -> None:
    return None


_BARE: Final = Stage("bare", PersonState, {_Nothing: _no_rule}, {})


def bare_step_parses(policy: Policy, sample: Sequence[bytes], keys: int = 200_000,
                     chunk: int = CHUNK) -> float:
    """What one keyed step costs when its rule does nothing, in orjson parses of one line of
    ``sample``: the state read, the rule looked up and called, the next due asked, the state
    written back, the deadline indexed (what the embedded driver does for each apply), over
    ``keys`` distinct keys, timed in chunks that alternate with parsing ``sample``'s lines,
    so that both see the machine of the same second (see interleave.py)."""
    names = [f"k{n:08d}" for n in range(keys)]
    table: dict[str, PersonState] = {name: PersonState() for name in names}
    ctx = Context(policy, Calendar(policy.zone, policy.daily_cutoff), 0)
    index = DeadlineIndex()
    item = _Nothing()
    apply, schedule = _BARE.apply, index.schedule
    step_s = parse_s = 0.0
    parsed = 0
    with for_throughput():
        for start in range(0, keys, chunk):
            offset = start % max(len(sample) - chunk, 1)
            lines = list(sample[offset:offset + chunk])
            parse_s += parse_only(lines)
            parsed += len(lines)
            started = time.perf_counter()
            for name in names[start:start + chunk]:
                schedule(name, apply(ctx, table, name, item)[1])
            step_s += time.perf_counter() - started
    return (step_s / keys) / (parse_s / parsed)


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
            if blank(raw):
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


def ceiling(lines: int, parse_s: float, floor_s: float, steps: int, applied: int,
            step_parses: float) -> dict[str, float]:
    """Where any engine of this shape must stay, from one run's measurements: the floor plus
    replay's ``steps`` keyed steps, each ``step_parses`` (:func:`bare_step_parses`) with no
    rule, less one step for each of the floor's ``applied`` lines, whose keyed read and write
    the floor already paid (priced as that, the first step of a line is counted cheaper than
    it is: the ceiling errs towards the target). ``ceiling_ratio``: its ratio to parse-only;
    ``step_us``: a step at the floor's machine speed; ``left_us``: what a line may spend on
    every rule at :data:`TARGET` (negative: out of reach before any rule runs)."""
    parse_line = parse_s / lines
    step_s = step_parses * parse_line
    per_line = floor_s / lines + max(steps - applied, 0) / lines * step_s
    return {"steps_per_line": steps / lines, "step_us": step_s * 1e6,
            "ceiling_ratio": parse_line / per_line,
            "left_us": (parse_line / TARGET - per_line) * 1e6}
