"""What the worker's person stage keeps of a tube's facts is the objects the tube stage holds.

On the worker the two stages apply one swab a batch apart: the tube stage reads the sampling
and the lab record, the person stage the forwards the tube stage sent, decoded afresh. Each
equal instant or word kept apart is an object of its own (an instant 32 bytes, a word ~60),
and a round city keeps several of them a person; replay, whose stages run in step, kept
none. The bus here delivers every tube record before any forward (``reverse``), the
furthest apart the two stages can be.
"""

from __future__ import annotations

import contextlib
import sys

import orjson

from closedloop.agents.state import PersonState, TubeState
from closedloop.schemas.instants import parse_instant
from closedloop.schemas.policy import default_policy
from closedloop.streams.engine.bus import PartitionedBus
from closedloop.streams.sim.feed import CityConfig, simulate


def _latest(lines: list[bytes]) -> int:
    latest = 0
    for line in lines:
        # the city's malformed lines are the bus's to dead-letter
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            latest = max(latest, parse_instant(orjson.loads(line)["value"]["occurred_at"]))
    return latest


def _states(bus: PartitionedBus, stage: str) -> list[object]:
    return [state for part in bus.stores[stage].parts.values() for state in part.values()]


def test_a_person_keeps_the_tube_stage_s_instants_and_one_object_a_result_word() -> None:
    lines = list(simulate(CityConfig(seed=3, people=3000, days=2, round=True)))
    bus = PartitionedBus(default_policy(), partitions=2, order="reverse")
    bus.produce(lines)
    bus.tick(_latest(lines) + 86_400)
    bus.run()
    held: dict[int, int] = {}  # each instant a tube holds -> the object it holds
    for tube in _states(bus, "tube"):
        if isinstance(tube, TubeState):
            for at in (*(tube.swabbed or ()), *((tube.rep.at,) if tube.rep else ())):
                held.setdefault(at, at)
    kept = copies = 0
    words = set()
    for person in _states(bus, "person"):
        if not isinstance(person, PersonState):
            continue
        instants = [sample.at for sample in person.samples or ()] + [person.last]
        if person.last_result is not None:
            instants.append(person.last_result.at)
            words.add(id(person.last_result.result))
            assert person.last_result.result is sys.intern(person.last_result.result)
        for at in instants:
            if at in held:
                kept += 1
                copies += held[at] is not at
    assert len(held) > 4096  # more instants than a small table of recent ones would share
    assert kept > 3000 and copies == 0, f"{copies} of {kept} instants are copies"
    assert 1 <= len(words) <= 3  # negative, positive, invalid
