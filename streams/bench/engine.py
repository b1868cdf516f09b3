"""Replay and deadline-index benchmarks: ratios against a baseline measured in the same run.

``closedloop bench replay``: on one generated city file, orjson parse-only throughput of the
lines versus full replay (decode, validate, de-duplicate, every loop, outputs), their ratio,
peak memory per tracked person, and the floor's ratio (:mod:`closedloop.streams.bench.floor`:
what every line costs before any rule). ``closedloop bench deadlines``: the deadline index's cost
per event at two sizes of open deadlines, to show it grows like log n, not n.
``closedloop bench worker`` (:mod:`closedloop.streams.bench.worker`): the Kafka worker end to
end versus raw aiokafka consumption of the same input.
Never used by tests: timings are reported, never asserted.
"""

from __future__ import annotations

import gc
import io
import random
import resource
import tempfile
import time
from functools import partial
from pathlib import Path

from closedloop.agents.state import TubeState
from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.bench.floor import bare_step_parses, ceiling, floor_pass
from closedloop.streams.bench.interleave import Interleaved
from closedloop.streams.engine.deadlines import DeadlineIndex

__all__ = ["bench_deadlines", "bench_replay"]


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _generate(people: int, days: int, seed: int, path: Path, receipts: bool = False) -> int:
    from closedloop.streams.sim.feed import CityConfig, simulate

    count = 0
    with path.open("wb") as handle:
        for line in simulate(CityConfig(seed=seed, people=people, days=days,
                                        receipts=receipts)):
            handle.write(line + b"\n")
            count += 1
    return count


def bench_replay(people: int, days: int, seed: int, repeat: int, receipts: bool = False
                 ) -> dict[str, float]:
    """Parse-only vs replay, and vs the floor, on the same file, each timed in step with
    its baseline (:mod:`~closedloop.streams.bench.interleave`); the best ratio of ``repeat``
    runs each. ``receipts``: the city with ``received_at`` on every line (contract v1.2)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.jsonl"
        started = time.perf_counter()
        events = _generate(people, days, seed, path, receipts)
        generated = time.perf_counter() - started
        data = path.read_bytes()
    lines = data.splitlines()
    del data
    policy = default_policy()
    rss_before = _rss_kib()
    replays: list[Interleaved] = []
    for _ in range(repeat):
        gc.collect()
        replays.append(Interleaved())
        result = replays[-1].run(
            partial(replay_lines, policy=policy, alerts_out=io.BytesIO()), lines)
    rss_after = _rss_kib()  # before the floor, whose own tables must not count
    floors: list[Interleaved] = []
    for _ in range(repeat):
        gc.collect()
        floors.append(Interleaved())
        applied = floors[-1].run(partial(floor_pass, policy=policy), lines)["applied"]
    replay = max(replays, key=lambda run: run.ratio)
    floor = max(floors, key=lambda run: run.ratio)
    persons = result.stats.get("persons_tracked_peak", 0)
    step = min(bare_step_parses(policy, lines) for _ in range(repeat))
    return {
        "events": events,
        "generate_s": generated,
        "parse_per_s": events / replay.parse_s,
        "replay_per_s": events / replay.pass_s,
        "ratio": replay.ratio,
        "floor_per_s": events / floor.pass_s,
        "floor_ratio": floor.ratio,
        **ceiling(events, floor.parse_s, floor.pass_s, result.keyed_steps, applied, step),
        "rss_growth_kib": rss_after - rss_before,
        "persons": persons,
    }


def bench_deadlines(sizes: list[int], operations: int, seed: int) -> list[dict[str, float]]:
    """Per-event index cost (reschedule one key, pop what is due) with n deadlines open."""
    results = []
    for size in sizes:
        rng = random.Random(seed)
        index = DeadlineIndex()
        horizon = 10 * size
        dues = [rng.randrange(horizon, 2 * horizon) for _ in range(size)]
        index.rebuild((f"k{i}", TubeState(req={"x": due})) for i, due in enumerate(dues))
        gc.collect()
        clock = horizon
        started = time.perf_counter()
        for _ in range(operations):
            key = f"k{rng.randrange(size)}"
            index.schedule(key, clock + rng.randrange(1, horizon))
            clock += 1
            for _ in index.pop_due(clock):
                pass
        elapsed = time.perf_counter() - started
        results.append({"open": size, "ns_per_event": elapsed / operations * 1e9})
        del index, dues
        gc.collect()
    return results
