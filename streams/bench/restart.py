"""``closedloop bench restart``: a worker killed with -9 and restarted on its data directory,
and a fresh node's restore.

``bench round``'s city of N persons is produced to fresh topics, with a ``clock --until``
past its catch-up day, and one ``closedloop worker --clock event`` consumes it to the end;
once its group has committed every input, the run waits until the worker's snapshots hold
its changelogs' ends (it takes them as its input goes idle). Then:

1. the worker is killed with -9 and started again on the same data directory: the seconds
   from that start to its ``/ready`` answering 200, and what its restore logged (keys from
   snapshots, changelog records read after them);
2. it is killed with -9 again and a *fresh node* starts on an empty data directory: it
   waits for the dead member's session to expire (a static member's partitions wait for it
   that long), then restores every partition from the changelogs alone; its restore rate is
   the keys it restored over the seconds its restore took, as it logged them (target
   >= 100,000 keys a second);
3. the cost of a snapshot: the snapshot files are read back into a stage's store in this
   process and each partition's snapshot is written again, timed.

The baseline of the restart is the fresh node's seconds from its start to ready (the dead
member's session included, as a real replacement node would wait). The run's topics and
group are deleted at the end. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from closedloop.streams.bench.memory import _ready
from closedloop.streams.bench.rounds import CATCHUP, CLOSES, write_city
from closedloop.streams.bench.worker import (
    WORKER,
    WORKER_INPUTS,
    _caught_up,
    _check_alive,
    _declare,
    _delete,
    _free_port,
    _stop,
)
from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.loop import changelog_topics
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.snapshot import Snapshots, read
from closedloop.streams.kafka.topics import topic_name, topic_specs

__all__ = ["RestartBench", "bench_restart", "run"]

PRODUCE_CHUNK = 200_000
"""Lines per ``produce`` call: its producer keeps a future per record until it flushes."""
RESTORED = re.compile(rb"restored (\d+) keys of partitions .*? in ([0-9.]+) s \((\d+) from "
                      rb"snapshots, (\d+) changelog records read\)")


@dataclass(slots=True)
class Restore:
    """What a worker's restore logged, and its start-to-ready time."""

    ready_s: float = 0.0
    keys: int = 0
    seconds: float = 0.0
    from_snapshots: int = 0
    changelog_records: int = 0

    @property
    def keys_per_s(self) -> float:
        return self.keys / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class RestartBench:
    lines: int = 0
    consume_s: float = 0.0  # the worker's start to its group's committing every input
    snapshots_s: float = 0.0  # from then until its snapshots held the changelogs' ends
    restarted: Restore = field(default_factory=Restore)
    fresh: Restore = field(default_factory=Restore)
    snapshot_keys: int = 0
    snapshot_bytes: int = 0
    snapshot_write_s: float = 0.0  # writing every partition's snapshot once, in-process


def bench_restart(persons: int, partitions: int, seed: int = 1, *, timeout: float = 3600.0,
                  log: IO[str] = sys.stderr) -> RestartBench:
    """Generate and produce the city, consume it, kill and restart, start a fresh node."""
    from closedloop.streams.app.clock import advance_clock
    from closedloop.streams.app.produce import produce

    result = RestartBench()
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings.from_env(prefix=prefix, partitions=partitions)
    app_id = f"{prefix}-app"
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        work = Path(tmp)
        try:
            _declare(settings, topic_specs(prefix, partitions, settings.replication))
            _declare(settings, changelog_topics(app_id, settings))
            city = work / "city.jsonl"
            result.lines = write_city(str(city), persons, seed)
            print(f"{result.lines:,} lines; producing …", file=log)
            with city.open("rb") as handle, open(os.devnull, "w") as quiet:
                while chunk := list(islice(handle, PRODUCE_CHUNK)):
                    produce(iter(chunk), settings, quiet)
            advance_clock(settings, CLOSES + CATCHUP + 60)
            city.unlink()
            worker = _Worker(settings, app_id, work / "data", work / "worker.log")
            started = time.monotonic()
            worker.start()
            deadline = started + timeout
            print("the worker consumes the city …", file=log)
            _wait(lambda: _consumed(settings, app_id), worker, deadline, "consume the city")
            result.consume_s = time.monotonic() - started
            print(f"consumed in {result.consume_s:,.1f} s; waiting for its snapshots …",
                  file=log)
            _wait(lambda: _snapshots_current(settings, app_id, work / "data" / "snapshots"),
                  worker, deadline, "snapshot its partitions")
            result.snapshots_s = time.monotonic() - started - result.consume_s
            worker.kill()
            print("killed with -9; restarting on the same data directory …", file=log)
            result.restarted = worker.start_until_ready(deadline)
            worker.kill()
            print("killed with -9 again; a fresh node on an empty data directory …", file=log)
            fresh = _Worker(settings, app_id, work / "fresh", work / "fresh.log")
            result.fresh = fresh.start_until_ready(deadline)
            fresh.stop()
            (result.snapshot_keys, result.snapshot_bytes,
             result.snapshot_write_s) = _snapshot_cost(work / "data" / "snapshots", work)
        finally:
            _delete(settings, app_id)
    return result


class _Worker:
    """One ``closedloop worker`` on a data directory, started and killed as a host would."""

    def __init__(self, settings: KafkaSettings, app_id: str, data_dir: Path, log_path: Path
                 ) -> None:
        self.settings, self.app_id, self.data_dir, self.log_path = (settings, app_id, data_dir,
                                                                    log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = _free_port()
        env = {**os.environ, "CLOSEDLOOP_KAFKA": self.settings.bootstrap,
               "CLOSEDLOOP_TOPIC_PREFIX": self.settings.prefix,
               "CLOSEDLOOP_PARTITIONS": str(self.settings.partitions)}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [*WORKER, "--clock", "event", "--loglevel", "info", "--app-id", self.app_id,
                 "--data-dir", str(self.data_dir), "--web-port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start_until_ready(self, deadline: float) -> Restore:
        """Start, and wait until ``/ready`` answers 200; what its restore logged."""
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        self.start()
        _wait(lambda: _ready(self.port), self, deadline, "become ready", poll=0.05)
        restore = Restore(ready_s=time.monotonic() - started)
        with self.log_path.open("rb") as handle:
            handle.seek(logged)
            found = RESTORED.findall(handle.read())
        for keys, seconds, snapshots, records in found:
            restore.keys += int(keys)
            restore.seconds += float(seconds)
            restore.from_snapshots += int(snapshots)
            restore.changelog_records += int(records)
        return restore

    def alive(self) -> None:
        assert self.process is not None
        _check_alive(self.process, self.log_path)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGTERM)


def _wait(condition: Any, worker: _Worker, deadline: float, what: str, poll: float = 0.5
          ) -> None:
    while not condition():
        worker.alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not {what} before the timeout")
        time.sleep(poll)


def _consumed(settings: KafkaSettings, app_id: str) -> bool:
    """Has the worker's group committed the end of every partition it reads?"""
    from kafka import KafkaConsumer, TopicPartition

    options = settings.kafka_python()
    consumer = KafkaConsumer(isolation_level="read_committed", **options)
    group = KafkaConsumer(group_id=app_id, enable_auto_commit=False, **options)
    try:
        tps = [TopicPartition(topic_name(settings.prefix, name), p)
               for name in WORKER_INPUTS for p in range(settings.partitions)]
        transactional = {topic_name(settings.prefix, name) for name in TOPOLOGY.carried}
        return _caught_up(group, consumer.end_offsets(tps), transactional)
    finally:
        consumer.close()
        group.close()


def _changelog_ends(settings: KafkaSettings, app_id: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(isolation_level="read_committed", **settings.kafka_python())
    try:
        tps = [TopicPartition(spec.address, p) for spec in changelog_topics(app_id, settings)
               for p in range(settings.partitions)]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def _snapshots_current(settings: KafkaSettings, app_id: str, directory: Path) -> bool:
    """Does every changelog partition with records have a snapshot at its end (its last
    transaction's commit marker past it at most)?"""
    for (topic, partition), end in _changelog_ends(settings, app_id).items():
        path = directory / f"{topic}.{partition}.snapshot"
        if end and (not path.exists() or read(path)[0].offset < end - 1):
            return False
    return True


def _snapshot_cost(directory: Path, work: Path) -> tuple[int, int, float]:
    """(keys, bytes, seconds) of writing every snapshot in ``directory`` once more, from
    the state it holds decoded into a stage's store, as the worker writes it."""
    from closedloop.streams.engine.store import StageStore

    stages = {wiring.name: wiring.stage.state for wiring in TOPOLOGY.stages}
    again = Snapshots(work / "rewritten")
    keys = size = 0
    seconds = 0.0
    for path in sorted(directory.glob("*.snapshot")):
        header, pairs = read(path)
        stage = header.topic.removesuffix("-state-changelog").rsplit("-", 1)[-1]
        store = StageStore(stages[stage])
        store.restore(header.partition, pairs)
        again.topic_ids[header.topic] = header.topic_id
        again.states[header.topic] = stages[stage]
        started = time.monotonic()
        again.take(header.topic, header.partition, header.offset,
                   store.parts[header.partition])
        seconds += time.monotonic() - started
        keys += len(store.parts[header.partition])
        size += again.path(header.topic, header.partition).stat().st_size
    return keys, size, seconds


def run(args: argparse.Namespace) -> int:
    print(f"a {args.persons:,}-person round city, generated …", file=sys.stderr)
    r = bench_restart(args.persons, args.partitions, args.seed)
    restarted, fresh = r.restarted, r.fresh
    print(f"lines                  {r.lines:>12,}")
    print(f"consumed               {r.consume_s:>12,.1f} s   (1 worker, {args.partitions} "
          f"partitions); snapshots at the changelogs' ends {r.snapshots_s:,.1f} s later")
    print(f"kill -9, restart       {restarted.ready_s:>12,.2f} s to ready   (target <= 10): "
          f"{restarted.keys:,} keys restored in {restarted.seconds:,.2f} s, "
          f"{restarted.from_snapshots:,} from snapshots, {restarted.changelog_records:,} "
          "changelog records read")
    print(f"fresh node             {fresh.ready_s:>12,.2f} s to ready   (the dead member's "
          f"session included): {fresh.keys:,} keys from {fresh.changelog_records:,} "
          f"changelog records in {fresh.seconds:,.2f} s")
    print(f"fresh node restore     {fresh.keys_per_s:>12,.0f} keys/s   (target >= 100,000)")
    print(f"ratio restart/fresh    {restarted.ready_s / fresh.ready_s:>12.1%}   (seconds to "
          "ready)")
    if r.snapshot_write_s:
        print(f"snapshot write         {r.snapshot_keys / r.snapshot_write_s:>12,.0f} keys/s   "
              f"({r.snapshot_keys:,} keys, {r.snapshot_bytes / 1e6:,.1f} MB, "
              f"{r.snapshot_write_s:,.2f} s for every partition once)")
    return 0
