"""The parse-only baseline, timed in step with the pass it is compared with.

This machine's speed moves by up to 2x from one minute to the next (it is shared). Timed
apart, a 0.2 s parse-only pass and a 10 s replay see different machines: the same code gave
replay/parse ratios from 1.7% to 3.2% in two consecutive runs, the baseline alone moving from
0.91 M to 1.69 M lines/s. Here the lines reach the measured pass in chunks, and each chunk is
parsed by orjson alone just before the pass reads it, so both see the machine of the same
second; the ratio is the sum of the chunks' parse times over the pass's own time (its wall
time less the parsing done in between).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Final, TypeVar

import orjson

__all__ = ["CHUNK", "Interleaved", "parse_only"]

R = TypeVar("R")

CHUNK: Final = 5_000
"""Lines a chunk: ~0.1 s of a pass, ~5 ms of parsing; short next to the machine's swings."""


class Interleaved:
    """One measured pass over ``lines`` with orjson parse-only of each chunk timed in step."""

    __slots__ = ("chunk", "parse_s", "pass_s")

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.parse_s = 0.0  # orjson parse-only of every line, summed over the chunks
        self.pass_s = 0.0  # the pass's own time

    def run(self, measured: Callable[[Iterable[bytes]], R], lines: Iterable[bytes]) -> R:
        """``measured(lines)``, its time and the baseline's kept; returns what it returned."""
        started = time.perf_counter()
        result = measured(self._feed(lines))
        self.pass_s = time.perf_counter() - started - self.parse_s
        return result

    @property
    def ratio(self) -> float:
        """The pass's throughput as a share of parse-only's."""
        return self.parse_s / self.pass_s

    def _feed(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        source = iter(lines)
        while part := list(islice(source, self.chunk)):
            self.parse_s += parse_only(part)
            yield from part


def parse_only(lines: list[bytes]) -> float:
    """Seconds orjson takes to parse ``lines``, and nothing else: the baseline."""
    started = time.perf_counter()
    for line in lines:
        try:  # noqa: SIM105 - suppress() would add a context manager to the baseline
            orjson.loads(line)
        except orjson.JSONDecodeError:
            pass  # malformed lines: the measured pass pays for them too
    return time.perf_counter() - started
