"""Benchmarks that report ratios against a baseline measured in the same run.

``closedloop bench replay``: on one generated city file, orjson parse-only throughput of the
lines versus full replay (decode, validate, de-duplicate, every loop, outputs), their ratio,
and peak memory per tracked person. ``closedloop bench deadlines``: the deadline index's cost
per event at two sizes of open deadlines, to show it grows like log n, not n.
``closedloop bench worker`` (:mod:`closedloop.streams.bench_worker`): the Kafka worker end to
end versus raw aiokafka consumption of the same input.
Never used by tests: timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from closedloop.agents.state import TubeState
from closedloop.schemas.policy import default_policy
from closedloop.streams.deadlines import DeadlineIndex
from closedloop.streams.replay import replay_lines

__all__ = ["add_parser", "bench_deadlines", "bench_replay", "run"]


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _generate(people: int, days: int, seed: int, path: Path) -> int:
    from closedloop.streams.simulate import CityConfig, simulate

    count = 0
    with path.open("wb") as handle:
        for line in simulate(CityConfig(seed=seed, people=people, days=days)):
            handle.write(line + b"\n")
            count += 1
    return count


def bench_replay(people: int, days: int, seed: int, repeat: int) -> dict[str, float]:
    """Parse-only vs replay on the same file; best of ``repeat`` runs each."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.jsonl"
        started = time.perf_counter()
        events = _generate(people, days, seed, path)
        generated = time.perf_counter() - started
        data = path.read_bytes()
    lines = data.splitlines()
    del data
    parse_best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            try:  # noqa: SIM105 - suppress() would add a context manager to the baseline
                orjson.loads(line)
            except orjson.JSONDecodeError:
                pass  # the simulated malformed lines: replay pays for them too
        parse_best = min(parse_best, time.perf_counter() - started)
    policy = default_policy()
    replay_best = math.inf
    rss_before = _rss_kib()
    persons = 0
    for _ in range(repeat):
        gc.collect()
        sink = io.BytesIO()
        started = time.perf_counter()
        result = replay_lines(lines, policy, alerts_out=sink)
        replay_best = min(replay_best, time.perf_counter() - started)
        persons = result.stats.get("persons_tracked_peak", 0)
    rss_after = _rss_kib()
    return {
        "events": events,
        "generate_s": generated,
        "parse_per_s": events / parse_best,
        "replay_per_s": events / replay_best,
        "ratio": parse_best / replay_best,
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


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    replay = sub.add_parser("replay", help="replay vs orjson parse-only on one generated city")
    replay.add_argument("--people", type=int, default=50_000, help="persons (default 50000)")
    replay.add_argument("--days", type=int, default=7, help="days simulated (default 7)")
    replay.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    replay.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    deadlines = sub.add_parser("deadlines", help="deadline index cost at two sizes")
    deadlines.add_argument(
        "--sizes", default="100000,10000000",
        help="comma-separated numbers of open deadlines (default 100000,10000000)",
    )
    deadlines.add_argument("--operations", type=int, default=200_000)
    deadlines.add_argument("--seed", type=int, default=1)
    from closedloop.streams import bench_worker

    bench_worker.add_parser(sub.add_parser(
        "worker", help="the Kafka worker end to end vs raw aiokafka consumption",
        formatter_class=argparse.RawDescriptionHelpFormatter))


def run(args: argparse.Namespace) -> int:
    if args.bench == "worker":
        from closedloop.streams import bench_worker

        return bench_worker.run(args)
    if args.bench == "replay":
        print(f"generating a {args.people:,}-person, {args.days}-day city …", file=sys.stderr)
        r = bench_replay(args.people, args.days, args.seed, args.repeat)
        print(f"events                 {r['events']:>12,.0f}")
        print(f"orjson parse-only      {r['parse_per_s']:>12,.0f} events/s")
        print(f"closedloop replay      {r['replay_per_s']:>12,.0f} events/s")
        print(f"ratio replay/parse     {r['ratio']:>12.1%}   (target >= 15%)")
        if r["persons"]:
            per = r["rss_growth_kib"] * 1024 / r["persons"]
            print(f"peak persons tracked   {r['persons']:>12,.0f}")
            print(f"peak RSS growth        {r['rss_growth_kib'] / 1024:>12,.1f} MiB "
                  f"(~{per:,.0f} bytes per tracked person, all state included)")
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = bench_deadlines(sizes, args.operations, args.seed)
    base = rows[0]
    for row in rows:
        growth = math.log2(row["open"]) / math.log2(base["open"])
        print(f"open deadlines {row['open']:>12,.0f}: {row['ns_per_event']:>8,.0f} ns/event  "
              f"(x{row['ns_per_event'] / base['ns_per_event']:.2f} vs smallest; "
              f"log n grew x{growth:.2f}, n grew x{row['open'] / base['open']:,.0f})")
    return 0
