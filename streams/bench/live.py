"""``closedloop bench live``: a wall-clock worker fed a testing day at a steady rate.

One ``closedloop worker --clock wall`` under a fresh prefix and app id, and this process feeding
it samplings with their lab records, a city's testing day in Shanghai's proportions
(:mod:`closedloop.streams.bench.live_feed`), at ``--rate`` events a second for ``--duration``
seconds, while it reads the alerts topic (read committed, as every reader of it does). Every
``--every`` seconds it prints the rate achieved and the consumer lag: records the broker holds
that the worker's group has not committed, and the age of the oldest of them (the time from
its production to now). At the end, the event-to-alert latency of each alert measured:

- ``positive``, raised at once when the report of a single tube is applied: from the report's
  hand-over to the producer to the alert's arrival on the alerts topic. No deadline is
  involved: this is the pipeline end to end (producer, broker, the worker's batch and its
  transaction, the reader).
- ``pool_positive`` and ``lab_sla_breached``, raised when they fall due: from the instant
  they fell due (the report; the first collection plus the SLA missed) to the arrival. The
  worker's clock trails wall time by the policy's ``allowed_lateness`` (so that a fact
  arriving that late still counts), so these include it by design: ``allowed_lateness + 2 s``
  is the bound that holds them to account.

The worker's policy is the contract's but for ``allowed_lateness`` (``--lateness``, 10 s) and
the lab SLAs (60 s to the lab's receipt, 120 s to the report), so that alerts fall due within
a run of a few minutes. Alerts due after the feed stops are not waited for. The run "kept up"
when the lag stayed under 5 s throughout and the worker read everything within seconds of the
feed's end. CPU of the worker, of this process (the feeder and the reader) and of the broker
(when it runs on this machine) says what limits it. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from closedloop.streams.bench.live_feed import MEASURED, LiveFeed, Shape, percentile
from closedloop.streams.bench.worker import (
    WORKER,
    _check_alive,
    _cpu_seconds,
    _declare,
    _delete,
    _free_port,
    _stop,
)
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_name, topic_specs

__all__ = ["LiveBench", "bench_live", "run"]

KEPT_UP_LAG_S = 5.0  # the figure: lag under 5 s throughout
STEP_S = 0.01  # the feeder's pace: what is due is sent every 10 ms
DRAIN_S = 120.0  # after the feed, how long the worker may take to read what is left


@dataclass
class LiveBench:
    """One run's figures."""

    rate: int
    duration: float
    lateness: int
    sent: Counter[str] = field(default_factory=Counter)  # by input topic
    fed_seconds: float = 0.0
    lag: list[tuple[float, int, float]] = field(default_factory=list)  # (t, records, age s)
    drained_after: float | None = None  # seconds after the feed's end
    latencies: dict[str, list[float]] = field(default_factory=dict)
    expected: Counter[str] = field(default_factory=Counter)
    unmeasured: Counter[str] = field(default_factory=Counter)  # other kinds, or due later
    cpu: dict[str, float | None] = field(default_factory=dict)  # share of one core
    worker_rss_mib: float | None = None

    @property
    def max_lag_s(self) -> float:
        return max((age for _, _, age in self.lag), default=0.0)

    @property
    def kept_up(self) -> bool:
        return self.max_lag_s < KEPT_UP_LAG_S and self.drained_after is not None \
            and self.drained_after < KEPT_UP_LAG_S


def bench_live(rate: int, duration: float, lateness: int, partitions: int, seed: int = 1, *,
               every: float = 5.0, out: IO[str] = sys.stdout) -> LiveBench:
    """Start the worker, feed it, measure; always stop it and delete the run's topics."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    prefix = f"live{uuid.uuid4().hex[:10]}"
    app_id = f"{prefix}-app"
    settings = KafkaSettings.from_env(prefix=prefix, partitions=partitions)
    shape = Shape()
    result = LiveBench(rate, duration, lateness)
    feed = LiveFeed(shape, seed, tag=prefix)
    with tempfile.TemporaryDirectory(prefix="closedloop-live-") as tmp:
        worker: subprocess.Popen[bytes] | None = None
        clients: list[Any] = []
        try:
            _declare(settings, topic_specs(prefix, partitions, settings.replication))
            policy = Path(tmp) / "policy.toml"
            policy.write_text(
                f'allowed_lateness = "{lateness}s"\n[lab]\n'
                f'received_within = "{shape.received_within}s"\n'
                f'reported_within = "{shape.reported_within}s"\n', "utf-8")
            port = _free_port()
            log_path = Path(tmp) / "worker.log"
            with log_path.open("wb") as log:
                worker = subprocess.Popen(
                    [*WORKER, "--clock", "wall", "--policy", str(policy), "--app-id", app_id,
                     "--data-dir", str(Path(tmp) / "data"), "--web-port", str(port)],
                    env={**os.environ, "CLOSEDLOOP_KAFKA": settings.bootstrap,
                         "CLOSEDLOOP_TOPIC_PREFIX": prefix,
                         "CLOSEDLOOP_PARTITIONS": str(partitions)},
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            _wait_ready(worker, port, log_path)
            config = settings.kafka_python()
            producer = KafkaProducer(acks="all", linger_ms=5, **config)
            alerts = KafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                                   fetch_max_wait_ms=20, **config)
            group = KafkaConsumer(group_id=app_id, enable_auto_commit=False, **config)
            clients += [producer, alerts, group]
            alert_tps = [TopicPartition(topic_name(prefix, "alerts"), p)
                         for p in range(partitions)]
            inputs = [TopicPartition(topic_name(prefix, name), p)
                      for name in ("sampling", "lab") for p in range(partitions)]
            alerts.assign(alert_tps)
            alerts.seek_to_beginning(*alert_tps)
            acks = _Acks()
            arrivals: list[tuple[float, dict[str, Any]]] = []
            brokers = broker_pids(settings.bootstrap)
            cpu_start = _cpu_now(worker.pid, brokers)
            print(f"feeding {rate:,} events/s for {duration:g} s (samplings and lab records, "
                  f"~{shape.events_per_tube():.1f} a tube; allowed_lateness {lateness} s); "
                  "worker pid " + str(worker.pid), file=out, flush=True)
            print(f"{'t s':>6} {'fed/s':>8} {'lag records':>12} {'lag s':>7} {'alerts':>7}",
                  file=out, flush=True)
            start = time.monotonic()
            next_report, last_sent = start + every, 0
            while (now := time.monotonic()) - start < duration:
                while sum(result.sent.values()) < int(rate * (now - start)):
                    _send(producer, feed, acks, result.sent, prefix)
                _read(alerts, arrivals)
                if now >= next_report:
                    _check_alive(worker, log_path)
                    lag = acks.lag(_committed(group, inputs))
                    result.lag.append((now - start, *lag))
                    sent = sum(result.sent.values())
                    print(f"{now - start:>6.0f} {(sent - last_sent) / every:>8,.0f} "
                          f"{lag[0]:>12,} {lag[1]:>7.2f} {len(arrivals):>7,}",
                          file=out, flush=True)
                    next_report, last_sent = next_report + every, sent
                time.sleep(max(0.0, STEP_S - (time.monotonic() - now)))
            producer.flush()
            end_mono, end_wall = time.monotonic(), time.time()
            result.fed_seconds = end_mono - start
            # after the feed: until the worker read everything and what fell due by the
            # feed's end has had its lateness and a few seconds more to arrive
            settle = end_wall + lateness + 3
            while time.monotonic() - end_mono < DRAIN_S:
                _read(alerts, arrivals)
                records = acks.lag(_committed(group, inputs))[0]
                if records == 0 and result.drained_after is None:
                    result.drained_after = time.monotonic() - end_mono
                if result.drained_after is not None and time.time() >= settle:
                    break
                time.sleep(0.2)
            result.cpu = _cpu_share(cpu_start, _cpu_now(worker.pid, brokers))
            result.worker_rss_mib = _rss_mib(worker.pid)
            _measure(result, feed, arrivals, end_wall)
        finally:
            for client in clients:
                client.close()
            if worker is not None:
                _stop(worker, signal.SIGTERM)
            _delete(settings, app_id)
    return result


class _Acks:
    """When each input record was handed to the producer, by (topic, partition) and offset,
    as the broker acknowledges them: what the lag's age is computed from."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, int], list[float]] = {}

    def ack(self, produced: float, metadata: Any) -> None:
        times = self.times.setdefault((metadata.topic, metadata.partition), [])
        while len(times) < metadata.offset:  # (offsets of one producer are contiguous)
            times.append(produced)
        if len(times) == metadata.offset:
            times.append(produced)
        else:
            times[metadata.offset] = produced

    def lag(self, committed: dict[tuple[str, int], int]) -> tuple[int, float]:
        """(records acknowledged but not committed by the worker's group, the age in seconds
        of the oldest of them)."""
        now, records, age = time.time(), 0, 0.0
        for where, times in list(self.times.items()):
            at = committed.get(where, 0)
            if at < len(times):
                records += len(times) - at
                age = max(age, now - times[at])
        return records, age


def _send(producer: Any, feed: LiveFeed, acks: _Acks, sent: Counter[str], prefix: str) -> None:
    now = time.time()
    record = feed.next(now)
    future = producer.send(topic_name(prefix, record.topic), key=record.key, value=record.value,
                           timestamp_ms=int(now * 1000))
    future.add_callback(acks.ack, now)
    sent[record.topic] += 1


def _read(consumer: Any, arrivals: list[tuple[float, dict[str, Any]]]) -> None:
    """Alerts that have arrived, each with the instant this reader got it."""
    batch = consumer.poll(timeout_ms=0)
    if batch:
        now = time.time()
        arrivals.extend((now, orjson.loads(r.value)) for rs in batch.values() for r in rs)


def _committed(group: Any, inputs: list[Any]) -> dict[tuple[str, int], int]:
    """The worker's group's committed offset of each input partition (``group``: a consumer
    of that group id that never subscribes)."""
    return {(tp.topic, tp.partition): group.committed(tp) or 0 for tp in inputs}


def _measure(result: LiveBench, feed: LiveFeed, arrivals: list[tuple[float, dict[str, Any]]],
             end: float) -> None:
    """Latency of each alert due by the feed's end, by kind; the rest counted apart."""
    seen: set[str] = set()
    for arrived, alert in arrivals:
        if alert["alert_id"] in seen:
            continue  # (a redelivery would be ignored by every reader)
        seen.add(alert["alert_id"])
        cause = feed.cause(alert)
        if cause is None or cause > end:
            result.unmeasured[alert["kind"]] += 1
            continue
        result.latencies.setdefault(alert["kind"], []).append(arrived - cause)
    result.expected = feed.expected(end)


def _wait_ready(worker: subprocess.Popen[bytes], port: int, log_path: Path,
                timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(worker, log_path)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f} s")


def broker_pids(bootstrap: str) -> list[int]:
    """Pids of the Kafka brokers on this machine that listen on a port of ``bootstrap``
    (their ``server.properties``, the last argument, names it); none for a remote cluster."""
    ports = {server.rsplit(":", 1)[-1] for server in bootstrap.split(",")}
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"kafka.Kafka" not in argv:
                continue
            config = Path(os.fsdecode(argv[argv.index(b"kafka.Kafka") + 1])).read_text()
        except (OSError, IndexError, ValueError):
            continue
        listeners = next((line for line in config.splitlines()
                          if line.startswith("listeners=")), "")
        if any(f":{port}," in listeners + "," for port in ports):
            found.append(int(entry.name))
    return found


def _cpu_now(worker: int, brokers: list[int]) -> dict[str, float | None]:
    broker_cpu = [_cpu_seconds(pid) for pid in brokers]
    return {"wall": time.monotonic(), "worker": _cpu_seconds(worker),
            "feeder and reader": time.process_time(),
            "broker": None if not brokers or None in broker_cpu
            else sum(c for c in broker_cpu if c is not None)}


def _cpu_share(start: dict[str, float | None], end: dict[str, float | None]
               ) -> dict[str, float | None]:
    """CPU seconds per wall second of each, over the run (1.0 = one core)."""
    wall = (end["wall"] or 0.0) - (start["wall"] or 0.0)
    return {name: None if start[name] is None or end[name] is None
            else ((end[name] or 0.0) - (start[name] or 0.0)) / wall
            for name in start if name != "wall"}


def _rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):  # the peak
            return int(line.split()[1]) / 1024
    return None


# -- command line ----------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    r = bench_live(args.rate, args.duration, args.lateness, args.partitions, args.seed,
                   every=args.every)
    fed = sum(r.sent.values())
    print(f"fed                    {fed:>12,} events in {r.fed_seconds:,.0f} s "
          f"({fed / r.fed_seconds:,.0f}/s; " + ", ".join(
              f"{topic} {n:,}" for topic, n in sorted(r.sent.items())) + ")")
    drained = ("not within the wait" if r.drained_after is None
               else f"{r.drained_after:.1f} s after the feed's end")
    print(f"consumer lag           max {r.max_lag_s:.2f} s "
          f"(max {max((n for _, n, _ in r.lag), default=0):,} records); read up {drained}")
    print(f"kept up                {'yes' if r.kept_up else 'NO'} (lag under "
          f"{KEPT_UP_LAG_S:g} s throughout, and read up within it after the feed)")
    bound = r.lateness + 2
    print(f"event-to-alert latency, on the alerts topic (s; bound: allowed_lateness "
          f"{r.lateness} + 2 = {bound} s):")
    measured: list[float] = []
    for kind in MEASURED:
        values = r.latencies.get(kind, [])
        measured += values
        print(f"  {kind:<18} n {len(values):>6,} of {r.expected.get(kind, 0):>6,} due   "
              + _quantiles(values))
    print(f"  {'all':<18} n {len(measured):>6,}            " + _quantiles(measured)
          + f"   p99 {'<' if percentile(measured, 0.99) < bound else '>='} {bound} s")
    if r.unmeasured:
        print("  not measured: " + ", ".join(f"{kind} {n:,}" for kind, n in
                                            sorted(r.unmeasured.items()))
              + " (other kinds, or due after the feed's end)")
    print("CPU (cores)            " + ", ".join(
        f"{name} {share:.2f}" for name, share in r.cpu.items() if share is not None)
        + ("" if r.cpu.get("broker") is not None else ", broker not on this machine")
        + (f"; worker peak RSS {r.worker_rss_mib:,.0f} MiB" if r.worker_rss_mib else ""))
    return 0


def _quantiles(values: list[float]) -> str:
    if not values:
        return "(none)"
    return "  ".join(f"{name} {percentile(values, share):6.2f}" for name, share in
                     (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))) + f"  max {max(values):6.2f}"
