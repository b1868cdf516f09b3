"""``closedloop simulate``: write a seeded synthetic city as replay JSON Lines (CONTRACT.md §6).

The city is :mod:`closedloop.streams.sim.city`; how its events reach the file, with their
noise, is :mod:`closedloop.streams.sim.feed`. This module is the command around them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from typing import IO

from closedloop.streams.cli.arguments import non_negative, positive
from closedloop.streams.sim.feed import DEFAULT_START, CityConfig, Noise, format_summary, simulate

__all__ = ["add_parser", "run"]


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +08:00")
    return value


def add_parser(parser: argparse.ArgumentParser) -> None:
    noise = Noise()
    parser.epilog = (
        "noise at scale 1 (fractions): "
        + ", ".join(f"{f.name} {getattr(noise, f.name)}" for f in fields(noise))
        + "\nThe closing summary on stderr counts every noisy line, so tests can expect them."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed; same seed and options give the same bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--people",
        type=positive,
        default=2000,
        help="persons living in the city (default: %(default)s)",
    )
    parser.add_argument(
        "--days", type=positive, default=3, help="days to simulate (default: %(default)s)"
    )
    parser.add_argument(
        "--start",
        type=_instant,
        default=DEFAULT_START,
        help="first day; its local date (+08:00) is day 1 (default: 2022-09-06T00:00:00+08:00)",
    )
    parser.add_argument(
        "--noise-scale",
        type=non_negative,
        default=1.0,
        help="multiply every noise and lapse rate; 0 gives a clean city (default: %(default)s)",
    )
    parser.add_argument(
        "--round",
        action="store_true",
        help="v1.1: add a population roster (resident/floating, a few leaving or moving "
        "district) and one city-wide testing round, 06:00-18:00 on day 2, with misses, "
        "catch-ups and people sampled who are not on the roster (off by default: a city "
        "without it keeps its bytes)",
    )
    parser.add_argument(
        "--receipts",
        action="store_true",
        help="v1.2: write received_at (when the platform received it) on every line, and give "
        "three sources habits: the first site of the first district enters its swabs at noon, "
        "the last lab uploads nothing 12:00-16:00 on day 2, grid worker 01 of the first "
        "district enters at night (off by default: a city without it keeps its bytes)",
    )
    parser.add_argument(
        "--inspections",
        action="store_true",
        help="v1.2: add supervision rounds over venues, sampling sites, companies and schools: "
        "findings rectified on time, late or never, rechecks that pass or fail, units found "
        "again (off by default: a city without it keeps its bytes)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write the JSON Lines, - for stdout (default: -)",
    )


def run(args: argparse.Namespace) -> int:
    config = CityConfig(
        seed=args.seed,
        people=args.people,
        days=args.days,
        start=args.start,
        noise=Noise().scaled(args.noise_scale),
        round=args.round,
        receipts=args.receipts,
        inspections=args.inspections,
    )
    summary: Counter[str] = Counter()
    show = sys.stderr.isatty() and config.people * config.days >= 20_000
    began = time.perf_counter()
    try:
        with _open(args.output) as out:
            _write(out, simulate(config, summary), show)
    except OSError as exc:
        print(f"simulate: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - began
    print(f"simulate: made in {seconds:.1f} s: {format_summary(summary)}", file=sys.stderr)
    return 0


def _open(target: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    if target == "-":
        return contextlib.nullcontext(sys.stdout.buffer)
    return open(target, "wb")


def _write(out: IO[bytes], lines: Iterable[bytes], progress: bool, chunk: int = 8192) -> None:
    """Write in chunks: one write call per line would dominate the run time."""
    buffer: list[bytes] = []
    written = 0
    for line in lines:
        buffer.append(line)
        if len(buffer) == chunk:
            out.write(b"\n".join(buffer) + b"\n")
            written += len(buffer)
            buffer.clear()
            if progress:
                print(f"\rsimulate: {written:,} lines…", end="", file=sys.stderr, flush=True)
    if buffer:
        out.write(b"\n".join(buffer) + b"\n")
    out.flush()
    if progress:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
