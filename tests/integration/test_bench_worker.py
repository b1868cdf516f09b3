"""``closedloop bench worker`` runs end to end on the test broker at a tiny size.

Only that it completes and reports positive figures: timings are never asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

LINES = {
    "events": r"^events\s+([\d,]+)$",
    "raw": r"^raw aiokafka \+ orjson\s+([\d,]+) msgs/s\s",
    "faust": r"^faust decode-only\s+([\d,]+) events per CPU second\s",
    "per cpu": r"^worker per CPU second\s+([\d,]+) events\s",
    "written": r"^records written\s+([\d,]+)\s+\(([\d.]+) per input event",
    "worker": r"^worker end to end\s+([\d,]+) events/s\s",
    "ratio": r"^ratio worker/raw\s+([\d.e+-]+)%\s",
}


def _bench(kafka_bootstrap: str, bench: str, people: int) -> str:
    """``closedloop bench BENCH`` on a tiny one-day city over two partitions: its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "bench", bench, "--people",
         str(people), "--days", "1", "--partitions", "2", "--settle", "2"],
        env={**os.environ, "CLOSEDLOOP_KAFKA": kafka_bootstrap},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_worker_prints_throughputs_ratios_and_records_written(kafka_bootstrap: str) -> None:
    stdout = _bench(kafka_bootstrap, "worker", 200)
    for name, pattern in LINES.items():
        found = re.search(pattern, stdout, re.M)
        assert found, f"no {name} line in:\n{stdout}"
        assert float(found.group(1).replace(",", "")) > 0, found.group(0)


MEMORY_LINES = {
    "events": r"^events\s+([\d,]+)$",
    "persons": r"^persons tracked\s+([\d,]+)\s",
    "idle": r"^idle worker\s+([\d,.]+) MiB peak RSS$",
    "worker": r"^worker\s+([\d,.]+) MiB peak RSS, the city consumed to the end",
    "per person": r"^worker per person\s+(-?[\d,]+) bytes over the idle worker",
}


def test_bench_memory_prints_the_workers_peak_and_its_share_per_person(
        kafka_bootstrap: str) -> None:
    stdout = _bench(kafka_bootstrap, "memory", 300)
    figures = {}
    for name, pattern in MEMORY_LINES.items():
        found = re.search(pattern, stdout, re.M)
        assert found, f"no {name} line in:\n{stdout}"
        figures[name] = float(found.group(1).replace(",", ""))
    assert figures["events"] > 0 and figures["persons"] > 0
    assert figures["worker"] >= figures["idle"] > 0
