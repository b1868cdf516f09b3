"""The replay decoder alone against orjson parse-only, over one JSON Lines file, by hand.

``python -m closedloop.streams.bench.lines FILE [--repeats N]``, FILE from e.g.
``closedloop simulate --people 20000 --days 5 -o FILE``. Both run over the same lines in the
same process, best CPU time of N interleaved passes each; the ratio is what to compare
between versions (absolute times say more about the machine). Never used by tests.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
from collections.abc import Callable, Sequence

import orjson

from closedloop.schemas.decode import decode_line
from closedloop.schemas.policy import default_policy

__all__ = ["main"]


def _best(
    runs: Sequence[Callable[[bytes], object]], lines: Sequence[bytes], repeats: int
) -> list[float]:
    """Best CPU time of each run over ``lines``, the runs interleaved pass by pass, so that
    a busy machine slows them alike."""
    best = [math.inf] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.process_time()
            for line in lines:
                run(line)
            best[index] = min(best[index], time.process_time() - started)
    return best


def _parse_only(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # the malformed lines: the decoder pays for them too


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="replay JSON Lines")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the best counts")
    args = parser.parse_args(argv)
    with open(args.file, "rb") as handle:
        lines = [line.rstrip(b"\r\n") for line in handle if line.strip()]
    cohorts = default_policy().cohorts
    received = time.time()
    # As replay calls it (an older decoder, without the receipt, for before/after runs).
    if "received_at" in inspect.signature(decode_line).parameters:
        def decode(line: bytes) -> object:
            return decode_line(line, cohorts, received_at=received)
    else:
        def decode(line: bytes) -> object:
            return decode_line(line, cohorts)
    parse, full = _best((_parse_only, decode), lines, args.repeats)
    n = len(lines)
    print(f"{n:,} lines, best of {args.repeats}")
    print(f"orjson parse-only   {parse / n * 1e6:6.2f} µs/line  {n / parse:>10,.0f} lines/s")
    print(f"decode_line         {full / n * 1e6:6.2f} µs/line  {n / full:>10,.0f} lines/s")
    print(f"decode / parse-only {full / parse:6.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
