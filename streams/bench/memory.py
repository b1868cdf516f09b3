"""``closedloop bench memory``: the worker's peak memory per tracked person, against replay's.

A city with a testing round (``simulate --people N --days D --round``) is produced to a fresh
set of topics with a ``clock --until`` a day past its last event, and one
``closedloop worker --clock event`` consumes it to the end (as ``bench worker`` runs it). Its
peak resident memory (Linux ``VmHWM``) is compared with that of an *idle* worker: the same
command on topics of its own that hold nothing, once it is ready. The difference, over the
persons the city makes the engine track (replay's peak count of person keys on the same
lines), is the worker's memory per tracked person. Replay's own figure, its peak RSS growth
over the same count, is measured in a child process on the same lines.

The run's topics and groups are deleted at the end. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from closedloop.streams.bench.worker import (
    WORKER,
    WorkerBench,
    _check_alive,
    _check_produced,
    _declare,
    _delete,
    _free_port,
    _measure_worker,
    _producible,
    _stop,
    add_city_options,
    peak_rss_kib,
)
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_specs

__all__ = ["MemoryBench", "add_parser", "bench_memory", "run"]


@dataclass(slots=True)
class MemoryBench:
    events: int = 0
    persons: int = 0  # replay's peak count of tracked persons on the same lines
    idle_kib: int = 0  # an idle worker's peak RSS
    worker_kib: int = 0  # the worker's peak RSS, the city consumed to the end
    # its RSS then, and its CPU from assignment to its last output: the peak over the end
    # is what a batch held for a moment (buffers, a batch's records and outputs)
    worker_end_kib: int = 0
    worker_cpu_seconds: float = 0.0
    replay_growth_kib: int = 0  # replay's peak RSS growth over the same lines

    @property
    def worker_bytes_per_person(self) -> float:
        return (self.worker_kib - self.idle_kib) * 1024 / self.persons

    @property
    def replay_bytes_per_person(self) -> float:
        return self.replay_growth_kib * 1024 / self.persons


def bench_memory(people: int, days: int, partitions: int, seed: int = 1, *,
                 settle: float = 5.0, timeout: float = 1800.0, log: IO[str] = sys.stderr
                 ) -> MemoryBench:
    """Generate, replay (child), measure an idle worker, produce, measure the worker."""
    from closedloop.streams.app.clock import advance_clock
    from closedloop.streams.app.produce import produce
    from closedloop.streams.sim.feed import CityConfig, simulate

    result = MemoryBench()
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        lines = list(simulate(CityConfig(seed=seed, people=people, days=days, round=True)))
        kept, until = _producible(lines)
        del lines
        city = Path(tmp) / "city.jsonl"
        city.write_bytes(b"".join(line + b"\n" for line in kept))
        print(f"{len(kept):,} lines; replay in a child process …", file=log)
        result.persons, result.replay_growth_kib = _replay_child(city, until, timeout)
        print("an idle worker …", file=log)
        result.idle_kib = _idle_worker(partitions, Path(tmp), settle, timeout)
        prefix = f"bench{uuid.uuid4().hex[:10]}"
        settings = KafkaSettings.from_env(prefix=prefix, partitions=partitions)
        try:
            _declare(settings, topic_specs(prefix, partitions, settings.replication))
            print("producing …", file=log)
            counts = produce(iter(kept), settings, log)
            counts["ticks"] = advance_clock(settings, until)
            del kept
            _check_produced(settings, counts)
            worker = WorkerBench()
            _measure_worker(settings, Path(tmp), worker, settle, timeout, None, log)
            result.events = sum(n for name, n in counts.items()
                                if name not in ("ticks", "deadletter"))
            if worker.peak_rss_kib is None:
                raise RuntimeError("no /proc: the worker's peak memory cannot be read here")
            result.worker_kib = worker.peak_rss_kib
            result.worker_end_kib = worker.end_rss_kib or 0
            result.worker_cpu_seconds = worker.cpu_seconds or 0.0
        finally:
            _delete(settings, f"{prefix}-app")
    return result


def _replay_child(city: Path, until: int, timeout: float) -> tuple[int, int]:
    """(persons tracked at the peak, peak RSS growth in KiB) of replay in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.bench.memory", "--replay-child", str(city),
         str(until)], capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the replay child failed:\n{done.stderr.decode()[-2000:]}")
    figures = json.loads(done.stdout.splitlines()[-1])
    return int(figures["persons"]), int(figures["growth_kib"])


def _replay_figures(city: str, until: int) -> dict[str, int]:
    """Read from ``VmHWM``, not ``getrusage``: Linux carries a parent's peak across
    ``execve`` into ``ru_maxrss``, and the parent held the whole city."""
    import gc

    from closedloop.schemas.policy import default_policy
    from closedloop.streams.app.replay import replay_lines

    gc.collect()
    before = peak_rss_kib(os.getpid()) or 0
    with open(city, "rb") as handle:
        result = replay_lines(handle, default_policy(), until=until)
    growth = (peak_rss_kib(os.getpid()) or 0) - before
    return {"persons": result.stats["persons_tracked_peak"], "growth_kib": growth}


def _idle_worker(partitions: int, tmp: Path, settle: float, timeout: float) -> int:
    """The peak RSS (KiB) of a worker on empty topics, ``settle`` seconds after it is ready."""
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings.from_env(prefix=prefix, partitions=partitions)
    port = _free_port()
    log_path = tmp / "idle-worker.log"
    env = {**os.environ, "CLOSEDLOOP_KAFKA": settings.bootstrap,
           "CLOSEDLOOP_TOPIC_PREFIX": prefix, "CLOSEDLOOP_PARTITIONS": str(partitions)}
    try:
        _declare(settings, topic_specs(prefix, partitions, settings.replication))
        with log_path.open("wb") as worker_log:
            worker = subprocess.Popen(
                [*WORKER, "--clock", "event", "--loglevel", "info", "--app-id",
                 f"{prefix}-app", "--data-dir", str(tmp / "idle"), "--web-port", str(port)],
                env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _ready(port):
                _check_alive(worker, log_path)
                if time.monotonic() > deadline:
                    raise RuntimeError("the idle worker never became ready")
                time.sleep(0.2)
            time.sleep(settle)
            peak = peak_rss_kib(worker.pid)
        finally:
            _stop(worker, signal.SIGTERM)
        if peak is None:
            raise RuntimeError("no /proc: the worker's peak memory cannot be read here")
        return peak
    finally:
        _delete(settings, f"{prefix}-app")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_city_options(parser, people=100_000, days=2)


def run(args: argparse.Namespace) -> int:
    print(f"a {args.people:,}-person, {args.days}-day city with a testing round …",
          file=sys.stderr)
    r = bench_memory(args.people, args.days, args.partitions, args.seed, settle=args.settle)
    print(f"events                 {r.events:>12,}")
    print(f"persons tracked        {r.persons:>12,}   (replay's peak on the same lines)")
    print(f"idle worker            {r.idle_kib / 1024:>12,.1f} MiB peak RSS")
    print(f"worker                 {r.worker_kib / 1024:>12,.1f} MiB peak RSS, the city "
          f"consumed to the end ({args.partitions} partitions)")
    print(f"worker per person      {r.worker_bytes_per_person:>12,.0f} bytes over the idle "
          "worker (target <= 1,536)")
    print(f"worker at the end      {r.worker_end_kib / 1024:>12,.1f} MiB RSS, "
          f"{(r.worker_end_kib - r.idle_kib) * 1024 / r.persons:,.0f} bytes a person over the "
          f"idle worker's peak; {r.worker_cpu_seconds:,.1f} s of CPU")
    print(f"replay per person      {r.replay_bytes_per_person:>12,.0f} bytes of peak RSS "
          "growth")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--replay-child":
        print(json.dumps(_replay_figures(sys.argv[2], int(sys.argv[3]))))
    else:
        sys.exit("usage: python -m closedloop.streams.bench.memory --replay-child FILE UNTIL")
