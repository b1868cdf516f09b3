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
    "end": r"^worker at the end\s+([\d,.]+) MiB RSS, -?[\d,]+ bytes a person over the idle "
           r"worker's peak; ([\d,.]+) s of CPU$",
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
    assert 0 < figures["end"] <= figures["worker"]  # resident at the end: at most the peak
    cpu = re.search(MEMORY_LINES["end"], stdout, re.M)
    assert cpu is not None and float(cpu.group(2).replace(",", "")) > 0


RESTART_LINES = {
    "lines": r"^lines\s+([\d,]+)$",
    "restart": r"^kill -9, restart\s+([\d.,]+) s to ready .*?: ([\d,]+) keys restored in "
               r"[\d.,]+ s, ([\d,]+) from snapshots, ([\d,]+) changelog records read$",
    "fresh": r"^fresh node\s+([\d.,]+) s to ready .*?: ([\d,]+) keys from ([\d,]+) changelog "
             r"records",
    "rate": r"^fresh node restore\s+([\d,]+) keys/s",
    "snapshot": r"^snapshot write\s+([\d,]+) keys/s",
}


def test_bench_restart_prints_seconds_to_ready_and_the_fresh_nodes_restore_rate(
        kafka_bootstrap: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "bench", "restart", "--persons",
         "500", "--partitions", "2"],
        env={**os.environ, "CLOSEDLOOP_KAFKA": kafka_bootstrap},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = {name: re.search(pattern, done.stdout, re.M) for name, pattern in
             RESTART_LINES.items()}
    assert all(found.values()), f"missing {[n for n, f in found.items() if not f]} in:\n" \
        f"{done.stdout}"
    figures = {name: [float(g.replace(",", "")) for g in match.groups()]
               for name, match in found.items() if match}
    # the restart restored every key from its snapshots, as many as the fresh node restored
    # from the changelogs
    ready, keys, from_snapshots, _ = figures["restart"]
    assert ready > 0 and keys == from_snapshots == figures["fresh"][1] > 0
    assert figures["rate"][0] > 0 and figures["snapshot"][0] > 0
