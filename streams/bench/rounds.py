"""``closedloop bench round``: a city-wide testing round of N persons through replay.

The city: a roster of N persons (85 % resident, 15 % floating) over 16 districts; one round,
every district, open 06:00–18:00 local; 97 % of the roster sampled in it in 10-in-1 tubes at
their district's sites (with 0.5 % extra people not on the roster), each tube received by a
lab an hour after its last swab and reported two hours later; two thirds of those missed are
caught up in single tubes within the next 24 h. Lines are made in event time, written to a
temporary file and streamed from it twice: through ``replay`` to the final report, then through
the floor (:mod:`closedloop.streams.bench.floor`) once the replay's memory is read; each
time, every chunk of lines is first parsed by orjson alone, the baseline, timed in step with
the pass (:mod:`closedloop.streams.bench.interleave`). Peak memory is the process's maximum
RSS growth during the replay, divided by the roster size.
"""

from __future__ import annotations

import gc
import heapq
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Final

import orjson

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.bench.floor import bare_step_parses, ceiling, floor_pass
from closedloop.streams.bench.interleave import Interleaved
from closedloop.streams.sim.city import SHANGHAI

__all__ = ["bench_round", "round_city", "write_city"]

DISTRICTS: Final = tuple(f"d{n:02d}" for n in range(16))
DAY0: Final = int(datetime(2022, 4, 2, tzinfo=SHANGHAI).timestamp())
OPENS: Final = DAY0 + 6 * 3600
CLOSES: Final = DAY0 + 18 * 3600
CATCHUP: Final = 24 * 3600
SAMPLED: Final = 0.97
CAUGHT_UP: Final = 2 / 3
OFF_ROSTER: Final = 0.005
POOL: Final = 10


def _stamp(t: int) -> str:
    return datetime.fromtimestamp(t, SHANGHAI).isoformat()


def _line(topic: str, value: dict[str, Any]) -> bytes:
    return orjson.dumps({"topic": topic, "value": value})


def round_city(persons: int, seed: int = 1) -> Iterator[bytes]:
    """The round city's replay lines, in event time (the same bytes for the same seed)."""
    rng = random.Random(seed)
    ids = [f"r:{n:08x}" for n in range(persons)]
    home = [rng.randrange(len(DISTRICTS)) for _ in range(persons)]
    t = DAY0
    for n, pid in enumerate(ids):  # the roster, built the night before
        yield _line("population", {
            "event_id": f"pop-{n:08x}", "occurred_at": _stamp(t - 3600 + n * 3000 // persons),
            "person_id": pid, "district": DISTRICTS[home[n]],
            "grid": f"g{home[n]:02d}-{n % 97:02d}",
            "status": "floating" if rng.random() < 0.15 else "resident"})
    yield _line("round", {"event_id": "round-1", "occurred_at": _stamp(DAY0 + 3600),
                          "round_id": "city-2022-04-02", "opens_at": _stamp(OPENS),
                          "closes_at": _stamp(CLOSES), "districts": ["*"]})
    sampled = [n for n in range(persons) if rng.random() < SAMPLED]
    missed = sorted(set(range(persons)) - set(sampled))
    extra = [(f"x:{n:08x}", rng.randrange(len(DISTRICTS)))
             for n in range(int(persons * OFF_ROSTER))]
    swabs = [(ids[n], home[n]) for n in sampled] + extra
    rng.shuffle(swabs)
    by_district: dict[int, list[str]] = {}
    for pid, district in swabs:
        by_district.setdefault(district, []).append(pid)
    tubes: list[tuple[int, int, list[str]]] = []  # (first swab, district, members)
    for district, members in sorted(by_district.items()):
        for start in range(0, len(members), POOL):
            first = rng.randrange(OPENS, CLOSES - 600)
            tubes.append((first, district, members[start:start + POOL]))
    tubes.sort()
    pending: list[tuple[int, int, bytes]] = []  # lab lines waiting for their time
    counter = 0
    for number, (first, district, members) in enumerate(tubes):
        tube = f"tb-{number:08x}"
        while pending and pending[0][0] <= first:
            yield heapq.heappop(pending)[2]
        name = DISTRICTS[district]
        for offset, pid in enumerate(members):
            yield _line("sampling", {
                "event_id": f"sa-{tube}-{offset}", "occurred_at": _stamp(first + offset * 20),
                "person_id": pid, "tube_id": tube, "site_id": f"site-{name}-{number % 40:02d}",
                "district": name, "pool_size": POOL})
        last = first + (len(members) - 1) * 20
        for at, status in ((last + 3600, "received"), (last + 3 * 3600, "reported")):
            value = {"event_id": f"lb-{tube}-{status[:3]}", "occurred_at": _stamp(at),
                     "tube_id": tube, "lab_id": "lab-1", "status": status}
            if status == "reported":
                value["result"] = "negative"
            counter += 1
            heapq.heappush(pending, (at, counter, _line("lab", value)))
    catchups = sorted((CLOSES + rng.randrange(600, CATCHUP), n) for n in missed
                      if rng.random() < CAUGHT_UP)
    for at, n in catchups:
        while pending and pending[0][0] <= at:
            yield heapq.heappop(pending)[2]
        tube = f"tc-{n:08x}"
        name = DISTRICTS[home[n]]
        yield _line("sampling", {
            "event_id": f"sa-{tube}", "occurred_at": _stamp(at), "person_id": ids[n],
            "tube_id": tube, "site_id": f"site-{name}-00", "district": name, "pool_size": 1})
    while pending:
        yield heapq.heappop(pending)[2]


def write_city(path: str, persons: int, seed: int) -> int:
    """Write the round city to ``path``; returns its number of lines."""
    lines = 0
    with open(path, "wb") as handle:
        for line in round_city(persons, seed):
            handle.write(line + b"\n")
            lines += 1
    return lines


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_round(persons: int, seed: int = 1, say: Callable[[str], None] | None = None
                ) -> dict[str, float]:
    """Parse-only versus replay of the round city, streamed from a temporary file. ``say``
    hears where a long run is (a 10-million-person city takes a quarter of an hour): once
    per phase, so nothing is added to the timed loops."""
    tell = say or (lambda _: None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "round.jsonl"
        started = time.perf_counter()
        tell(f"writing the city ({persons:,} persons, ~{persons * 22 // 10:,} lines) …")
        # made by a child process, so the city's own lists never count in this one's peak
        made = subprocess.run(
            [sys.executable, "-c", "import sys; from closedloop.streams.bench.rounds import "
             "write_city; print(write_city(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))",
             str(path), str(persons), str(seed)], check=True, capture_output=True, text=True)
        lines = int(made.stdout)
        generated = time.perf_counter() - started
        tell(f"{lines:,} lines in {generated:,.0f} s; replay of the file, each chunk parsed "
             "by orjson alone just before replay reads it (the baseline) …")
        policy = default_policy()
        gc.collect()
        rss_before = _rss_kib()
        replay = Interleaved()
        with path.open("rb") as handle, tempfile.TemporaryFile() as round_reports:
            result = replay.run(partial(
                replay_lines, policy=policy, until=CLOSES + CATCHUP + 60,
                round_reports_out=round_reports, received_at=CLOSES + 2 * CATCHUP), handle)
            rss_growth = _rss_kib() - rss_before
            round_reports.seek(0)
            final = orjson.loads(round_reports.read().splitlines()[-1])
        gc.collect()
        tell(f"replay {lines / replay.pass_s:,.0f} lines/s, parse-only "
             f"{lines / replay.parse_s:,.0f}; the floor (decoding and de-duplication alone, "
             "no rule), the same way …")
        floor = Interleaved()
        with path.open("rb") as handle:
            applied = floor.run(partial(
                floor_pass, policy=policy, received_at=CLOSES + 2 * CATCHUP), handle)["applied"]
        with path.open("rb") as handle:
            step = bare_step_parses(policy, list(islice(handle, 200_000)))
    rows = final["rows"]
    return {
        "persons": persons, "lines": lines, "generate_s": generated, "parse_s": replay.parse_s,
        "replay_s": replay.pass_s, "ratio": replay.ratio, "rss_growth_kib": rss_growth,
        "in_scope": sum(r["in_scope"] for r in rows), "missed": sum(r["missed"] for r in rows),
        "caught_up": sum(r["caught_up"] for r in rows),
        "not_on_roster": sum(r["not_on_roster"] for r in rows),
        "round_missed": result.alerts_by_kind.get("round_missed", 0),
        "floor_s": floor.pass_s, "floor_ratio": floor.ratio,
        **ceiling(lines, floor.parse_s, floor.pass_s, result.keyed_steps, applied, step),
    }
