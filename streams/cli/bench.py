"""``closedloop bench replay|round|deadlines|worker|memory|restart|hostile|console|live``: ratios
against a baseline, never bare times, and the live worker's lag and latency.

``replay``: orjson parse-only of one generated city versus full replay, and peak memory per
tracked person (:mod:`closedloop.streams.bench.engine`). ``round``: the same for a city-wide
testing round of N persons (:mod:`closedloop.streams.bench.rounds`). ``deadlines``: the
deadline index's cost per event at two sizes. ``worker``: the Kafka worker end to end
versus the raw client (:mod:`closedloop.streams.bench.worker`). ``memory``: the worker's
peak memory per tracked person on a city with a round (:mod:`closedloop.streams.bench.memory`).
``restart``: a worker killed with -9 and restarted on its data directory after consuming the
round city, its seconds to ready against a fresh node's, and the fresh node's restore rate
(:mod:`closedloop.streams.bench.restart`).
``hostile``: inputs whose cost must stay linear (a long round with a report a minute, a
flapping county: size N against 2N) and the peak memory of a long line holding an identifier
(:mod:`closedloop.streams.bench.hostile`). ``console``: the web console's pages on a
PostgreSQL ledger of a million alerts, against its /health answer
(:mod:`closedloop.streams.bench.console`). ``live``: a wall-clock worker fed a testing day at
a steady rate, its consumer lag over time and its event-to-alert latency
(:mod:`closedloop.streams.bench.live`). Never used by tests: timings are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import math
import sys

from closedloop.streams.bench.engine import bench_deadlines, bench_replay
from closedloop.streams.cli.arguments import positive, sizes

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    replay = sub.add_parser("replay", help="replay vs orjson parse-only on one generated city")
    replay.add_argument("--people", type=positive, default=50_000,
                        help="persons (default 50000)")
    replay.add_argument("--days", type=positive, default=7, help="days simulated (default 7)")
    replay.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    replay.add_argument("--repeat", type=positive, default=2,
                        help="runs of each, the best kept (default 2)")
    replay.add_argument("--receipts", action="store_true",
                        help="the same city with received_at on every line and its sources' "
                        "habits (simulate --receipts), to compare with the city without")
    rounds = sub.add_parser(
        "round", help="a city-wide testing round of N persons through replay",
        description="A roster of N persons, one city-wide round (97% sampled in 10-in-1 "
        "tubes, 2/3 of the missed caught up), their lab results: orjson parse-only versus "
        "replay of the same file, wall time, and peak memory per person.")
    rounds.add_argument("--persons", type=positive, default=1_000_000,
                        help="persons on the roster (default 1000000; the goal is 10000000)")
    rounds.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    deadlines = sub.add_parser("deadlines", help="deadline index cost at two sizes")
    deadlines.add_argument(
        "--sizes", type=sizes, default="100000,10000000",
        help="comma-separated numbers of open deadlines, each at least 2 (default "
        "100000,10000000)",
    )
    deadlines.add_argument("--operations", type=positive, default=200_000,
                           help="index operations timed at each size (default 200000)")
    deadlines.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    hostile = sub.add_parser(
        "hostile", help="hostile inputs: cost linear in their size, memory of a long line",
        description="A round open N days with a progress report a minute against one open "
        "2N days; N flapping area records of one county against 2N (ratio ~2: linear, ~4: "
        "quadratic); peak RSS of a fresh replay of one long line holding a mobile number, "
        "in several spellings and encodings, against an empty file's.")
    hostile.add_argument("--round-days", type=positive, default=40,
                         help="the shorter round's window in days (default 40)")
    hostile.add_argument("--area-records", type=positive, default=20_000,
                         help="the smaller count of area records (default 20000)")
    hostile.add_argument("--line-mb", type=positive, default=10,
                         help="size of the long lines in MB (default 10)")
    hostile.add_argument("--repeat", type=positive, default=2,
                         help="runs of each, the best kept (default 2)")
    hostile.add_argument("--only", choices=("round", "area", "line"), action="append",
                         help="run only these parts (repeatable; default all)")
    from closedloop.streams.bench import worker as bench_worker

    bench_worker.add_parser(sub.add_parser(
        "worker", help="the Kafka worker end to end vs raw aiokafka consumption",
        formatter_class=argparse.RawDescriptionHelpFormatter))
    from closedloop.streams.bench import memory as bench_memory

    bench_memory.add_parser(sub.add_parser(
        "memory", help="the Kafka worker's peak memory per tracked person on a round city",
        formatter_class=argparse.RawDescriptionHelpFormatter))
    _restart_parser(sub.add_parser(
        "restart", help="a worker killed with -9 and restarted on its data directory: seconds "
        "to ready; a fresh node's restore rate",
        formatter_class=argparse.RawDescriptionHelpFormatter))
    _console_parser(sub.add_parser(
        "console", help="the web console's pages on a PostgreSQL ledger of 1,000,000 alerts",
        formatter_class=argparse.RawDescriptionHelpFormatter))
    _live_parser(sub.add_parser(
        "live", help="a wall-clock worker fed at a steady rate: lag and event-to-alert latency",
        formatter_class=argparse.RawDescriptionHelpFormatter))


def _console_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.bench import console as bench_console
    from closedloop.streams.cli.arguments import positive

    parser.description = bench_console.__doc__
    parser.add_argument("--ledger", "--url", dest="ledger", metavar="URL",
                        help="a PostgreSQL database (default $CLOSEDLOOP_TEST_DATABASE_URL); "
                        "the bench works in a schema of its own")
    parser.add_argument("--alerts", type=positive, default=1_000_000,
                        help="alerts in the ledger (default 1000000)")
    parser.add_argument("--requests", type=positive, default=200,
                        help="timed requests of each page (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the schema (its name printed)")


def _restart_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.bench import restart as bench_restart
    from closedloop.streams.cli.arguments import positive

    parser.description = bench_restart.__doc__
    parser.add_argument("--persons", type=positive, default=1_000_000,
                        help="persons on the round city's roster (default 1000000)")
    parser.add_argument("--partitions", type=positive, default=4,
                        help="partitions of every topic (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1)")


def _live_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.bench import live as bench_live
    from closedloop.streams.cli.arguments import positive

    parser.description = bench_live.__doc__
    parser.add_argument("--rate", type=positive, default=2_000,
                        help="events a second (default 2000; Shanghai's 2022 round peaked near "
                        "1,800 samplings a second)")
    parser.add_argument("--duration", type=positive, default=600,
                        help="seconds of feed (default 600)")
    parser.add_argument("--every", type=positive, default=5,
                        help="seconds between two lag lines (default 5)")
    parser.add_argument("--lateness", type=positive, default=10,
                        help="the worker's allowed_lateness in seconds (default 10)")
    parser.add_argument("--partitions", type=positive, default=4,
                        help="partitions of every topic (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1)")


def _print_floor(r: dict[str, float]) -> None:
    """The floor's lines (streams/bench/floor.py): how close any engine of this shape can come
    to the target, measured in the same run."""
    print(f"ratio floor/parse      {r['floor_ratio']:>12.1%}   (decoding and de-duplication "
          "alone, no rule)")
    print(f"keyed steps a line     {r['steps_per_line']:>12.2f}   (replay's; a step with no rule "
          f"costs {r['step_us']:.2f} us)")
    print(f"ratio ceiling/parse    {r['ceiling_ratio']:>12.1%}   (the floor plus those steps "
          f"with no rule; at 8% the rules would have {r['left_us']:+.2f} us a line)")


def _run_hostile(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import default_policy
    from closedloop.streams.bench import hostile

    parts = args.only or ["round", "area", "line"]
    cases = (("round", "round window (days)", hostile.round_city, args.round_days,
              hostile.round_policy()),
             ("area", "flapping area records", hostile.area_city, args.area_records,
              default_policy()))
    for part, label, make, size, policy in cases:
        if part not in parts:
            continue
        print(f"{label}: {size:,} against {2 * size:,} …", file=sys.stderr)
        r = hostile.bench_linear(make, size, policy, args.repeat)
        print(f"{label:<22} {size:>9,}: {r['small_s']:8.2f} s   {2 * size:>9,}: "
              f"{r['large_s']:8.2f} s (CPU)   ratio {r['ratio']:.2f}   (linear ~2, "
              "quadratic ~4; target <= 2.5)")
    if "line" in parts:
        size = args.line_mb * 1_000_000
        for r in hostile.line_memory(size):
            print(f"long line {r['shape']:<15} {r['bytes'] / 1e6:6.1f} MB: peak RSS "
                  f"{r['peak_kib'] / 1024:7.1f} MiB (empty file {r['base_kib'] / 1024:.1f} MiB; "
                  f"target < 200), {r['seconds']:6.2f} s, {r['reason']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.bench == "hostile":
        return _run_hostile(args)
    if args.bench == "memory":
        from closedloop.streams.bench import memory as bench_memory

        return bench_memory.run(args)
    if args.bench == "worker":
        from closedloop.streams.bench import worker as bench_worker

        return bench_worker.run(args)
    if args.bench == "restart":
        from closedloop.streams.bench import restart as bench_restart

        return bench_restart.run(args)
    if args.bench == "console":
        from closedloop.streams.bench import console as bench_console

        return bench_console.run(args)
    if args.bench == "live":
        from closedloop.streams.bench import live as bench_live

        return bench_live.run(args)
    if args.bench == "round":
        from closedloop.streams.bench.rounds import bench_round

        print(f"a {args.persons:,}-person round city, through replay …", file=sys.stderr)
        r = bench_round(args.persons, args.seed,
                        say=lambda phase: print(f"  {phase}", file=sys.stderr, flush=True))
        per = r["rss_growth_kib"] * 1024 / r["persons"]
        print(f"lines                  {r['lines']:>12,.0f}   (generated in "
              f"{r['generate_s']:,.1f} s)")
        print(f"orjson parse-only      {r['lines'] / r['parse_s']:>12,.0f} lines/s")
        print(f"closedloop replay      {r['lines'] / r['replay_s']:>12,.0f} lines/s   "
              f"wall {r['replay_s']:,.1f} s (goal: the whole day in under 10 min at 10 M)")
        print(f"ratio replay/parse     {r['ratio']:>12.1%}   (target >= 8% at 1 M)")
        _print_floor(r)
        print(f"peak RSS growth        {r['rss_growth_kib'] / 1024:>12,.1f} MiB   "
              f"(~{per:,.0f} bytes per person; target <= 1,000 at 1 M, goal <= 600 at 10 M)")
        print(f"final report           in scope {r['in_scope']:,.0f}, missed "
              f"{r['missed']:,.0f}, caught up {r['caught_up']:,.0f}, not on roster "
              f"{r['not_on_roster']:,.0f}; round_missed alerts {r['round_missed']:,.0f}")
        return 0
    if args.bench == "replay":
        print(f"generating a {args.people:,}-person, {args.days}-day city"
              f"{' with receipts' if args.receipts else ''} …", file=sys.stderr)
        r = bench_replay(args.people, args.days, args.seed, args.repeat, args.receipts)
        print(f"events                 {r['events']:>12,.0f}")
        print(f"orjson parse-only      {r['parse_per_s']:>12,.0f} events/s")
        print(f"closedloop replay      {r['replay_per_s']:>12,.0f} events/s")
        print(f"ratio replay/parse     {r['ratio']:>12.1%}   (target >= 8%, aim 30%)")
        print(f"floor                  {r['floor_per_s']:>12,.0f} events/s")
        _print_floor(r)
        if r["persons"]:
            per = r["rss_growth_kib"] * 1024 / r["persons"]
            print(f"peak persons tracked   {r['persons']:>12,.0f}")
            if r["rss_growth_kib"] <= 0:  # the state fit in memory the process held already
                print("peak RSS growth        none measured (a city this small fits in what "
                      "the process already held; --people 50000 measures it)")
            else:
                print(f"peak RSS growth        {r['rss_growth_kib'] / 1024:>12,.1f} MiB "
                      f"(~{per:,.0f} bytes per tracked person, all state included)")
        return 0
    rows = bench_deadlines(args.sizes, args.operations, args.seed)
    base = rows[0]
    for row in rows:
        growth = math.log2(row["open"]) / math.log2(base["open"])
        print(f"open deadlines {row['open']:>12,.0f}: {row['ns_per_event']:>8,.0f} ns/event  "
              f"(x{row['ns_per_event'] / base['ns_per_event']:.2f} vs smallest; "
              f"log n grew x{growth:.2f}, n grew x{row['open'] / base['open']:,.0f})")
    return 0
