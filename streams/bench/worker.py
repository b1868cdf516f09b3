"""``closedloop bench worker``: the Kafka worker's end-to-end throughput against raw consumption.

Both halves read the same pre-produced input on the same broker in one run, so their ratio
says how much of what a bare client could read the worker turns into outputs:

- **raw**: one AIOKafkaConsumer reads every record of the input topics and parses each value
  with orjson; timed (wall and CPU) from its seek to the beginning to the last record
  parsed, fetching included, the median of 5 passes.
- **faust decode-only**: a Faust agent that only parses each record
  (:mod:`closedloop.streams.bench.faust_decode`), CPU from its partitions' assignment to
  its last record.
- **worker**: one ``closedloop worker --clock event`` process under a fresh app id, started
  after the input (and the ``--until`` ticks) is on the broker. The clock starts at the last
  ``/metrics`` poll (every 20 ms) that still saw no input consumed, so it errs towards a
  lower figure; it stops at the largest CreateTime of the records the worker produced
  (every output topic, its internal person-tests and report-parts, and the stages'
  changelogs). The run is over once those topics are quiet for ``--settle`` seconds and
  the worker's group has committed every offset of every topic it reads. Its CPU time
  (Linux) counts from the moment it was assigned its partitions (it logs its process CPU
  then): start-up (imports, connecting, joining the group) is left out, fetching and
  restoring are counted, as the raw client's fetching is. *Records written* counts every
  record of those topics.

*Events* are the records on the contract's input topics, malformed ones included. The
figure the lean-worker issue sets is events per CPU second against the raw client's; on a
shared machine CPU time is steadier than wall time.
The benchmark's topics and consumer group are deleted at the end. Timings are reported, never
asserted. ``--py-spy FILE`` also records a raw py-spy profile of the worker (py-spy on PATH
or beside the interpreter; a development tool, not a dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from closedloop.schemas.instants import parse_instant
from closedloop.streams.app.clock import advance_clock
from closedloop.streams.app.produce import produce
from closedloop.streams.engine.topology import TOPOLOGY
from closedloop.streams.kafka.loop import changelog_topics
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import TopicSpec, ensure_topics, topic_name, topic_specs

__all__ = ["WorkerBench", "add_parser", "bench_worker", "run"]

# What the worker reads (the contract's inputs plus its own internal topics) and writes.
WORKER_INPUTS = tuple(TOPOLOGY.readers)
WORKER_OUTPUTS = (*TOPOLOGY.outputs, *TOPOLOGY.carried)
WORKER = [sys.executable, "-m", "closedloop.streams.cli", "worker"]  # tuning runs swap this
DAY_S = 86_400
POLL_S = 0.02  # /metrics poll period while waiting for the first input to be consumed
_CONSUMED = re.compile(rb"^closedloop_events_consumed_total\{[^}]*\} ([0-9.e+]+)$", re.M)
_ASSIGNED_CPU = re.compile(rb"assigned partitions .* at process CPU ([0-9.]+) s")


@dataclass(slots=True)
class WorkerBench:
    """One run's figures; instants are epoch seconds (comparable with record timestamps)."""

    events: int = 0
    raw_records: int = 0
    raw_seconds: float = 0.0
    raw_cpu_seconds: float = 0.0  # the median pass's CPU (this process), fetching included
    raw_after_fetch_cpu_seconds: float = 0.0  # the same from the first batch handed over
    faust_records: int = 0  # the decode-only Faust agent
    faust_cpu_seconds: float = 0.0
    started: float = 0.0  # worker: last poll that saw nothing consumed
    start_window: float = 0.0  # from that poll to the first poll that saw a consumed input
    cpu_seconds: float | None = None  # the worker's CPU from its assignment to the end
    first_output: float = 0.0
    last_output: float = 0.0
    outputs: dict[str, int] = field(default_factory=dict)
    peak_rss_kib: int | None = None  # the worker's peak resident memory (Linux: VmHWM)
    end_rss_kib: int | None = None  # its resident memory once its outputs are quiet (VmRSS)

    @property
    def raw_per_s(self) -> float:
        return self.raw_records / self.raw_seconds

    @property
    def worker_seconds(self) -> float:
        return self.last_output - self.started

    @property
    def worker_per_s(self) -> float:
        return self.events / self.worker_seconds

    @property
    def ratio(self) -> float:
        return self.worker_per_s / self.raw_per_s

    @property
    def worker_per_cpu_s(self) -> float | None:
        return None if not self.cpu_seconds else self.events / self.cpu_seconds

    @property
    def raw_per_cpu_s(self) -> float:
        return self.raw_records / self.raw_cpu_seconds

    @property
    def raw_after_fetch_per_cpu_s(self) -> float:
        return self.raw_records / self.raw_after_fetch_cpu_seconds

    @property
    def faust_per_cpu_s(self) -> float:
        return self.faust_records / self.faust_cpu_seconds

    @property
    def written(self) -> int:
        """Every record the worker wrote: outputs, internal topics and changelogs."""
        return sum(self.outputs.values())


def bench_worker(
    people: int, days: int, partitions: int, seed: int = 1, *, settle: float = 5.0,
    timeout: float = 900.0, py_spy: str | None = None, log: IO[str] | None = None,
) -> WorkerBench:
    """Generate, produce, measure raw then worker, and always clean the broker up after
    (``log``: where progress goes, standard error as it is when called by default)."""
    log = sys.stderr if log is None else log
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings.from_env(prefix=prefix, partitions=partitions)
    result = WorkerBench()
    with tempfile.TemporaryDirectory(prefix="closedloop-bench-") as tmp:
        try:
            # Before producing: a topic the producer auto-created would have one partition.
            _declare(settings, topic_specs(prefix, partitions, settings.replication))
            lines = _city(people, days, seed)
            kept, until = _producible(lines)
            if len(kept) < len(lines):
                print(f"left out {len(lines) - len(kept)} keyless lines for compacted topics "
                      "(the broker refuses them, and with them their whole batch)", file=log)
            counts = produce(iter(kept), settings, log)
            counts["ticks"] = advance_clock(settings, until)
            del lines, kept
            result.events = sum(counts.get(name, 0) for name in TOPOLOGY.inputs)
            _check_produced(settings, counts)
            (result.raw_records, result.raw_seconds, result.raw_cpu_seconds,
             result.raw_after_fetch_cpu_seconds) = asyncio.run(_raw(settings))
            result.faust_records, result.faust_cpu_seconds = _faust_decode(
                settings, result.events, Path(tmp), timeout)
            _measure_worker(settings, Path(tmp), result, settle, timeout, py_spy, log)
        finally:
            _delete(settings, f"{prefix}-app")
    return result


def _declare(settings: KafkaSettings, specs: list[TopicSpec]) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python())
    try:
        ensure_topics(admin, specs)
    finally:
        admin.close()


def _city(people: int, days: int, seed: int) -> list[bytes]:
    from closedloop.streams.sim.feed import CityConfig, simulate

    return list(simulate(CityConfig(seed=seed, people=people, days=days)))


def _producible(lines: list[bytes]) -> tuple[list[bytes], int]:
    """The lines but those that would reach a compacted topic without a key, and an
    ``--until`` a day past the latest ``occurred_at`` (so worker and replay end alike).

    Kafka rejects a keyless record on a compacted topic together with its whole batch;
    ``produce`` dead-letters such a line itself (``engine/envelopes.py``), and the benchmark
    leaves them out so that the input it counts is exactly what reaches the input topics.
    """
    from closedloop.schemas.events import KEY_FIELD

    compacted = {topic.name for topic in TOPOLOGY.topics if topic.compact}
    kept = []
    latest = 0
    for line in lines:
        key: object = ""
        try:
            envelope = orjson.loads(line)
            topic, value = envelope["topic"], envelope["value"]
            if topic in compacted:
                key = value.get(KEY_FIELD[topic])
            latest = max(latest, parse_instant(value["occurred_at"]))
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError):
            pass  # malformed: kept as it is, for produce or the worker to reject
        if isinstance(key, str):
            kept.append(line)
    return kept, latest + DAY_S


def _check_produced(settings: KafkaSettings, counts: dict[str, int]) -> None:
    """Fail unless every record ``produce`` counted is on the broker."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python())
    try:
        tps = [TopicPartition(topic_name(settings.prefix, name), p)
               for name in TOPOLOGY.inputs for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
    stored = sum(ends.values())
    sent = sum(counts.get(name, 0) for name in TOPOLOGY.inputs)
    if stored != sent:
        raise RuntimeError(f"produce sent {sent} input records but the broker holds {stored}")


# -- raw consumption -------------------------------------------------------------------------

async def _raw(settings: KafkaSettings, passes: int = 5
               ) -> tuple[int, float, float, float]:
    """Read and orjson-parse every input record, ``passes`` times from the beginning:
    (records, seconds from the seek to the last record, CPU seconds of this process over
    the same span, and CPU seconds from the first batch handed over to the last record);
    each the median pass (one pass of a small city takes a few tens of milliseconds).

    The first batch arrives only after the fetcher has fetched and unpacked up to a
    megabyte per partition (a small city's whole input): the second CPU figure leaves that
    out, and earlier versions of this benchmark compared the worker with it alone.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                **settings.aiokafka())
    await consumer.start()
    try:
        tps = [TopicPartition(topic_name(settings.prefix, name), p)
               for name in TOPOLOGY.inputs for p in range(settings.partitions)]
        consumer.assign(tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends[tp] - begins[tp] for tp in tps)
        loads, error = orjson.loads, orjson.JSONDecodeError
        walls: list[float] = []
        cpus: list[float] = []
        parse_cpus: list[float] = []
        for _ in range(passes):
            start, start_cpu = time.perf_counter(), time.process_time()
            await consumer.seek_to_beginning(*tps)
            count = 0
            first_cpu = 0.0
            while count < total:
                batch = await consumer.getmany(timeout_ms=1000)
                if batch and not first_cpu:
                    first_cpu = time.process_time()
                for records in batch.values():
                    for record in records:
                        try:  # noqa: SIM105 - suppress() would add a context manager
                            loads(record.value)
                        except error:
                            pass  # the simulated malformed lines: the worker pays for them
                    count += len(records)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
            parse_cpus.append(time.process_time() - first_cpu)
        return (total, statistics.median(walls), statistics.median(cpus),
                statistics.median(parse_cpus))
    finally:
        await consumer.stop()


def _faust_decode(settings: KafkaSettings, records: int, tmp: Path, timeout: float
                  ) -> tuple[int, float]:
    """Run the decode-only Faust agent (:mod:`closedloop.streams.bench.faust_decode`) over
    the same input: (records, its CPU seconds from the first record to the last)."""
    app_id = f"{settings.prefix}-decode"
    env = {**os.environ, "CLOSEDLOOP_KAFKA": settings.bootstrap,
           "CLOSEDLOOP_TOPIC_PREFIX": settings.prefix,
           "CLOSEDLOOP_PARTITIONS": str(settings.partitions)}
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.streams.bench.faust_decode", "--prefix",
         settings.prefix, "--records", str(records), "--app-id", app_id,
         "--data-dir", str(tmp / "decode"), "--web-port", str(_free_port())],
        env=env, capture_output=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(b"{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the decode-only Faust agent failed ({done.returncode}):\n"
                           f"{done.stderr.decode('utf-8', 'replace')[-2000:]}")
    figures = orjson.loads(lines[-1])
    return int(figures["records"]), float(figures["cpu_seconds"])


# -- the worker ------------------------------------------------------------------------------

def _measure_worker(settings: KafkaSettings, tmp: Path, result: WorkerBench, settle: float,
                    timeout: float, py_spy: str | None, log: IO[str]) -> None:
    from kafka import KafkaConsumer, TopicPartition

    app_id = f"{settings.prefix}-app"
    changelogs = changelog_topics(app_id, settings)
    _declare(settings, changelogs)  # before the worker: their records count as written
    outputs = [TopicPartition(topic_name(settings.prefix, name), p)
               for name in WORKER_OUTPUTS for p in range(settings.partitions)]
    outputs += [TopicPartition(spec.address, p) for spec in changelogs
                for p in range(settings.partitions)]
    inputs = [TopicPartition(topic_name(settings.prefix, name), p)
              for name in WORKER_INPUTS for p in range(settings.partitions)]
    consumer = KafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                             **settings.kafka_python())
    group = KafkaConsumer(group_id=app_id, enable_auto_commit=False, **settings.kafka_python())
    # One list of partitions for every end_offsets call: kafka-python 3 drops partitions of
    # topics a consumer learns about after its first call.
    watched = sorted(set(inputs) | set(outputs))
    transactional = {topic_name(settings.prefix, name) for name in TOPOLOGY.carried}
    transactional |= {spec.address for spec in changelogs}
    baseline = _subset(consumer.end_offsets(watched), outputs)  # produce's ticks: not outputs
    port = _free_port()
    log_path = tmp / "worker.log"
    env = {**os.environ, "CLOSEDLOOP_KAFKA": settings.bootstrap,
           "CLOSEDLOOP_TOPIC_PREFIX": settings.prefix,
           "CLOSEDLOOP_PARTITIONS": str(settings.partitions)}
    with log_path.open("wb") as worker_log:
        worker = subprocess.Popen(
            [*WORKER, "--clock", "event", "--loglevel", "info",
             "--app-id", app_id, "--data-dir", str(tmp / "data"), "--web-port", str(port)],
            env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + timeout
        result.started, result.start_window = _first_consumption(worker, port, log_path,
                                                                 deadline)
        cpu_before = _assignment_cpu(log_path)
        if py_spy:  # from the first input on: the profile is of processing, not start-up
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            profiler = subprocess.Popen(
                [spy, "record", "--pid", str(worker.pid), "--format", "raw",
                 "--output", py_spy, "--rate", "100"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"worker consuming (pid {worker.pid}); waiting until its outputs are quiet …",
              file=log)
        last: dict[Any, int] = {}
        quiet_since = time.monotonic()
        cpu_after: float | None = cpu_before
        while True:
            _check_alive(worker, log_path)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not finish in {timeout:.0f} s")
            ends = consumer.end_offsets(watched)
            if _subset(ends, outputs) != last:
                last, quiet_since = _subset(ends, outputs), time.monotonic()
                cpu_after = _cpu_seconds(worker.pid)  # not counting the quiet wait
            elif time.monotonic() - quiet_since >= settle and _caught_up(
                    group, _subset(ends, inputs), transactional):
                break
            time.sleep(0.5)
        if cpu_after is not None:
            result.cpu_seconds = cpu_after - cpu_before
        result.outputs, result.first_output, result.last_output = _output_times(
            consumer, baseline, last)
        if not result.outputs:
            raise RuntimeError("the worker produced nothing")
        result.end_rss_kib = rss_kib(worker.pid)  # first: the peak read after is at least it
        result.peak_rss_kib = peak_rss_kib(worker.pid)
    finally:
        _stop(worker, signal.SIGTERM)
        if profiler is not None:
            _stop(profiler, signal.SIGINT)  # py-spy writes its file on SIGINT
        consumer.close()
        group.close()


def _first_consumption(worker: subprocess.Popen[bytes], port: int, log_path: Path,
                       deadline: float) -> tuple[float, float]:
    """(instant of the last poll that saw nothing consumed, width until one saw some).

    The worker answers no poll while it applies a batch, so the last idle answer comes from
    before its first batch, however big."""
    url = f"http://127.0.0.1:{port}/metrics"
    nothing_yet: float | None = None
    while time.monotonic() < deadline:
        _check_alive(worker, log_path)
        sent = time.time()
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: bytes = response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            body = b""  # the web server is not up yet: nothing consumed either
        if sum(float(v) for v in _CONSUMED.findall(body)) > 0:
            if nothing_yet is None:
                raise RuntimeError("the worker consumed before its /metrics answered")
            return nothing_yet, time.time() - nothing_yet
        nothing_yet = sent
        time.sleep(POLL_S)
    raise RuntimeError("the worker consumed nothing before the timeout")


def _assignment_cpu(log_path: Path) -> float:
    """The worker's process CPU seconds when it was assigned its partitions (it logs them):
    what it spent before (imports, connecting, joining the group) is start-up; from there
    on it fetches and processes, as the raw client does from its seek."""
    found = _ASSIGNED_CPU.search(log_path.read_bytes())
    if found is None:
        raise RuntimeError("the worker consumed before it logged its assignment")
    return float(found.group(1))


def _subset(offsets: dict[Any, int], tps: list[Any]) -> dict[Any, int]:
    return {tp: offsets[tp] for tp in tps}


def _caught_up(group: Any, ends: dict[Any, int], transactional: set[str]) -> bool:
    """Has the worker's group (``group``: a consumer of that id, never subscribed) committed
    the end of every partition it reads? On the topics the worker writes in transactions,
    the last offset may be a commit marker, which no consumer reads."""
    return all((group.committed(tp) or 0) >= end - (tp.topic in transactional)
               for tp, end in ends.items())


def _output_times(consumer: Any, begin: dict[Any, int], end: dict[Any, int]
                  ) -> tuple[dict[str, int], float, float]:
    """Records per output topic and the first and last CreateTime (s) among them."""
    tps = [tp for tp in begin if end[tp] > begin[tp]]
    counts: dict[str, int] = {}
    first, last = float("inf"), 0.0
    if not tps:
        return counts, 0.0, 0.0
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, begin[tp])
    for record in _records(consumer, tps, end):
        stamp = record.timestamp / 1000
        first, last = min(first, stamp), max(last, stamp)
        name = _label(record.topic)
        counts[name] = counts.get(name, 0) + 1
    return counts, first, last


def _label(topic: str) -> str:
    """``sampling`` for ``{prefix}.sampling.v1``; ``tube changelog`` for a stage's changelog."""
    if topic.endswith("-state-changelog"):
        return topic.removesuffix("-state-changelog").rsplit("-", 1)[-1] + " changelog"
    return topic.split(".")[-2]


def _records(consumer: Any, tps: Iterable[Any], end: dict[Any, int]) -> Iterator[Any]:
    pending = set(tps)
    while pending:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            yield from (r for r in records if r.offset < end[tp])
        pending = {tp for tp in pending if consumer.position(tp) < end[tp]}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far, or None where /proc is not there.

    On a shared machine wall time also counts the time others held the CPU: this does not.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, from field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int | None:
    """A process's peak resident memory so far in KiB (``VmHWM``), or None without /proc."""
    return _status_kib(pid, "VmHWM")


def rss_kib(pid: int) -> int | None:
    """A process's resident memory now in KiB (``VmRSS``), or None without /proc."""
    return _status_kib(pid, "VmRSS")


def _status_kib(pid: int, name: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{name}:\s+(\d+) kB$", status, re.M)
    return None if found is None else int(found.group(1))


def _check_alive(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    if worker.poll() is not None:
        tail = log_path.read_text("utf-8", "replace")[-3000:]
        raise RuntimeError(f"the worker exited with {worker.returncode}:\n{tail}")


def _stop(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _delete(settings: KafkaSettings, group: str) -> None:
    """Remove every topic of the run (ours and Faust's changelogs) and the worker's group."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(**settings.kafka_python())
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(settings.prefix)]
        if doomed:
            admin.delete_topics(doomed)
        # kafka-python 3 renamed delete_consumer_groups to delete_groups.
        delete_groups = getattr(admin, "delete_groups", None) or admin.delete_consumer_groups
        with suppress(KafkaError):  # no group: the worker never joined
            delete_groups([group])
    finally:
        admin.close()


# -- command line ----------------------------------------------------------------------------

def add_city_options(parser: argparse.ArgumentParser, people: int, days: int) -> None:
    """The options of a benchmark that runs the worker on a simulated city."""
    parser.add_argument("--people", type=int, default=people, help=f"persons (default {people})")
    parser.add_argument("--days", type=int, default=days, help=f"days simulated (default {days})")
    parser.add_argument("--partitions", type=int, default=4,
                        help="partitions of every topic (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds the outputs must stay quiet to call the run over")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_city_options(parser, people=5_000, days=3)
    parser.add_argument("--py-spy", metavar="FILE",
                        help="also profile the worker with py-spy (raw collapsed stacks)")


def run(args: argparse.Namespace) -> int:
    print(f"generating a {args.people:,}-person, {args.days}-day city; producing it …",
          file=sys.stderr)
    r = bench_worker(args.people, args.days, args.partitions, args.seed, settle=args.settle,
                     py_spy=args.py_spy)
    outputs = ", ".join(f"{name} {n:,}" for name, n in sorted(r.outputs.items()))
    print(f"events                 {r.events:>12,}")
    print(f"raw aiokafka + orjson  {r.raw_per_s:>12,.0f} msgs/s   "
          f"({r.raw_per_cpu_s:,.0f} per CPU second, fetching included; "
          f"{r.raw_after_fetch_per_cpu_s:,.0f} from the first batch handed over)")
    print(f"faust decode-only      {r.faust_per_cpu_s:>12,.0f} events per CPU second   "
          f"({r.faust_per_cpu_s / r.raw_per_cpu_s:.2%} of raw)")
    print(f"worker end to end      {r.worker_per_s:>12,.0f} events/s   "
          f"({r.worker_seconds:.2f} s, 1 worker, {args.partitions} partitions)")
    print(f"ratio worker/raw       {r.ratio * 100:>11.3g}%   (end to end, wall time)")
    if r.cpu_seconds and r.worker_per_cpu_s:
        print(f"worker CPU             {r.cpu_seconds:>12.2f} s   "
              f"({r.cpu_seconds / r.worker_seconds:.0%} of the wall time; start-up excluded)")
        print(f"worker per CPU second  {r.worker_per_cpu_s:>12,.0f} events   "
              f"({r.worker_per_cpu_s / r.raw_per_cpu_s:.2%} of raw: target >= 1%, aim 2%; "
              f"{r.worker_per_cpu_s / r.faust_per_cpu_s:.0%} of the decode-only Faust agent; "
              f"{r.worker_per_cpu_s / r.raw_after_fetch_per_cpu_s:.2%} of raw without its "
              "first fetches)")
    print(f"records written        {r.written:>12,}   ({r.written / r.events:.2f} per input "
          f"event, changelogs included: target <= 1.5)")
    print(f"                       ({outputs}); first output "
          f"{(r.first_output - r.started) * 1000:,.0f} ms after the start "
          f"(start known within {r.start_window * 1000:,.0f} ms)")
    return 0
