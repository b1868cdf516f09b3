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


def test_bench_worker_prints_throughputs_ratios_and_records_written(kafka_bootstrap: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.cli", "bench", "worker", "--people", "200",
         "--days", "1", "--partitions", "2", "--settle", "2"],
        env={**os.environ, "CLOSEDLOOP_KAFKA": kafka_bootstrap},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, pattern in LINES.items():
        found = re.search(pattern, done.stdout, re.M)
        assert found, f"no {name} line in:\n{done.stdout}"
        assert float(found.group(1).replace(",", "")) > 0, found.group(0)
