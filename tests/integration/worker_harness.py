"""Run real ``closedloop worker`` processes against the test broker, and read their topics.

Each test gets its own topic prefix and consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PARTITIONS = 4
CLOSEDLOOP = [sys.executable, "-m", "closedloop.streams.cli"]
# What the worker writes and never reads: every other topic of a prefix is one it consumes.
OUTPUTS = ("alerts", "escalations", "person-status", "daily-report", "round-report",
           "deadletter")


def remove_topics(prefix: str, options: dict[str, Any]) -> None:
    """Delete the topics named with ``prefix`` (inputs, outputs, internal topics, and the
    changelogs of the app id ``{prefix}-app``); ``options``: kafka-python's connection."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(request_timeout_ms=30_000, **options)
    try:
        doomed = [name for name in admin.list_topics() if name.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """One prefix and app id on the broker: workers, the producer tool, topic readers."""

    bootstrap: str
    workdir: Path
    prefix: str = field(default_factory=lambda: f"it{uuid.uuid4().hex[:10]}")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    replication: int = 1  # of the topics the worker and the producer create
    partitions: int = PARTITIONS  # of each topic: fewer make a broker's restart cheaper

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLOSEDLOOP_KAFKA": self.bootstrap,
            "CLOSEDLOOP_TOPIC_PREFIX": self.prefix,
            "CLOSEDLOOP_PARTITIONS": str(self.partitions),
            "CLOSEDLOOP_REPLICATION": str(self.replication),
        }

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    def start_worker(self, *extra: str, clock: str = "event", wait: bool = True
                     ) -> subprocess.Popen[bytes]:
        """A new worker with a data directory and log of its own; waits until it is ready."""
        return self._launch(len(self.workers), [*extra], clock, wait)

    def restart(self, stopped: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """The same worker again, as a deployment restarts it: its data directory, options and
        log (appended); waits until it is ready."""
        assert stopped.poll() is not None, "stop it first"
        number: int = stopped.number  # type: ignore[attr-defined]
        return self._launch(number, stopped.extra, stopped.clock)  # type: ignore[attr-defined]

    def _launch(self, number: int, extra: list[str], clock: str, wait: bool = True
                ) -> subprocess.Popen[bytes]:
        port = free_port()
        log_path = self.workdir / f"worker{number}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [*CLOSEDLOOP, "worker", "--clock", clock, "--app-id", self.app_id,
                 "--data-dir", str(self.workdir / f"data{number}"), "--web-port", str(port),
                 "--loglevel", "info", *extra],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        process.web_port = port  # type: ignore[attr-defined]
        process.log_path = log_path  # type: ignore[attr-defined]
        process.number, process.extra, process.clock = number, extra, clock  # type: ignore[attr-defined]
        self.workers.append(process)
        if wait:
            self.wait_ready(process)
        return process

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
        """Until the worker's ``/ready`` answers 200 (partitions assigned and restored, the
        cluster answering)."""
        deadline = time.monotonic() + timeout
        log_path: Path = process.log_path  # type: ignore[attr-defined]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text()[-3000:]
                raise AssertionError(f"worker exited {process.returncode}:\n{tail}")
            if readiness(process)[0]:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout}s:\n{log_path.read_text()[-3000:]}")

    def produce(self, path: Path, until: str | None = None) -> None:
        subprocess.run([*CLOSEDLOOP, "produce", str(path)], env=self.env, check=True,
                       capture_output=True, timeout=120)
        if until is not None:  # then move the event-mode workers' clock, as replay --until
            self.clock(until)

    def clock(self, until: str) -> None:
        """``closedloop clock --until``: the event-mode workers' clock to ``until``."""
        subprocess.run([*CLOSEDLOOP, "clock", "--until", until], env=self.env, check=True,
                       capture_output=True, timeout=120)

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        """Stop the workers, then delete every topic of this deployment: a broker holds a
        few open files per partition, and a development broker that kept every test's
        topics ran out of file descriptors after a few dozen runs of the suite."""
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        remove_topics(self.prefix, self.consumer_options())

    def consumer_options(self) -> dict[str, Any]:
        """kafka-python options of the topic reader (a secure deployment adds its own)."""
        return {"bootstrap_servers": self.bootstrap}

    def read(self, name: str) -> list[tuple[bytes | None, bytes]]:
        """Every record of ``{prefix}.{name}.v1`` so far, as (key, value)."""
        return [(r.key, r.value) for r in self.records(name)]

    def records(self, name: str) -> list[Any]:
        """Every record of ``{prefix}.{name}.v1`` so far, as kafka-python's ConsumerRecord
        (headers and timestamp too)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                                 **self.consumer_options())
        try:
            topic = f"{self.prefix}.{name}.v1"
            partitions = [TopicPartition(topic, p)
                          for p in consumer.partitions_for_topic(topic) or ()]
            if not partitions:
                return []
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            rows: list[Any] = []
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=500).values():
                    rows.extend(records)
            return rows
        finally:
            consumer.close()

    def assert_publishes(self, alerts: list[dict[str, Any]], reports: list[dict[str, Any]]
                         ) -> None:
        """The workers publish exactly ``alerts`` (by id and bytes) and ``reports``: what
        replay made of the same file."""
        published = self.wait_for("alerts", len(alerts))
        got = {a["alert_id"]: orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in published}
        assert got == {a["alert_id"]: orjson.dumps(a, option=orjson.OPT_SORT_KEYS)
                       for a in alerts}
        published_reports = self.wait_for("daily-report", len(reports))
        assert sorted(distinct(published_reports)) == sorted(distinct(reports))

    def wait_for(self, name: str, count: int, timeout: float = 240, settle: float = 3
                 ) -> list[dict[str, Any]]:
        """Records of a topic (distinct by value) once ``count`` are there and it is quiet."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = [orjson.loads(v) for _, v in self.read(name) if v is not None]
            if len(distinct(rows)) >= count:
                time.sleep(settle)
                return [orjson.loads(v) for _, v in self.read(name) if v is not None]
            time.sleep(1)
        raise AssertionError(f"{name}: {len(distinct(rows))} of {count} distinct records "
                             f"after {timeout:.0f} s")

    def settled(self) -> bool:
        """Has the worker's group read and committed everything it reads? Past the group's
        committed offset of each partition, no record a read-committed reader could deliver
        may remain (a transaction's marker, or what it aborted, is no record)."""
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        options = self.consumer_options()
        admin = KafkaAdminClient(**options)
        try:
            reads = [t for t in admin.list_topics() if t.startswith(f"{self.prefix}.")
                     and t.split(".")[-2] not in OUTPUTS]
        finally:
            admin.close()
        group = KafkaConsumer(group_id=self.app_id, enable_auto_commit=False, **options)
        reader = KafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                               **options)
        try:
            tps = [TopicPartition(topic, p) for topic in reads for p in range(self.partitions)]
            # The committed offsets first: a batch that commits between the two reads then
            # shows its inputs unread, never its outputs to internal topics read.
            committed = {tp: group.committed(tp) or 0 for tp in tps}
            ends = reader.end_offsets(tps)  # read committed: the last stable offsets
            behind = {tp: at for tp, at in committed.items() if at < ends[tp]}
            if not behind:
                return True
            reader.assign(list(behind))
            for tp, at in behind.items():
                reader.seek(tp, at)
            for _ in range(4):  # a few fetches reach the ends unless records lie before them
                if any(reader.poll(timeout_ms=500).values()):
                    return False
                if all(reader.position(tp) >= ends[tp] for tp in behind):
                    return True
            return False
        finally:
            group.close()
            reader.close()

    def wait_settled(self, timeout: float = 240) -> None:
        """Until the workers have applied everything they were given (:meth:`settled`)."""
        self.wait_until(self.settled, "the workers' group read and committed every input",
                        timeout)

    def published(self, name: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _, v in self.read(name) if v is not None]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.3)


def readiness(process: subprocess.Popen[bytes]) -> tuple[bool, str]:
    """(ready, reason) from a worker's ``/ready``; not ready while its web server is not up."""
    url = f"http://127.0.0.1:{process.web_port}/ready"  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True, ""
    except urllib.error.HTTPError as answer:  # 503: not ready, and why
        return False, str(orjson.loads(answer.read()).get("reason", ""))
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return False, f"no answer: {exc}"


def assigned_inputs(process: subprocess.Popen[bytes], prefix: str) -> set[str]:
    """The input topics (of ``prefix``) in the latest partition assignment a worker logged."""
    log: str = process.log_path.read_text(errors="replace")  # type: ignore[attr-defined]
    latest = log.rsplit("Setting newly assigned partitions", 1)
    if len(latest) < 2:
        return set()
    table = latest[1].split("\n[", 1)[0]  # up to the next log record
    return {topic for topic in ("sampling", "lab", "travel", "followup", "cohort")
            if f"| {prefix}.{topic}.v1 " in table}


def distinct(rows: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    return {_canonical(row): row for row in rows}


def replay(
    path: Path, until: str, workdir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    outputs = replay_outputs(path, until, workdir)
    return outputs["alerts"], outputs["daily-report"]


City = tuple[Path, dict[str, list[dict[str, Any]]]]


def replayed_round_city(workdir: Path, seed: int, until: str) -> City:
    """A simulated 600-person city with a testing round (``simulate --round``) and replay's
    outputs of it up to ``until``, checked to exercise every output: alerts of several
    loops, daily and round reports."""
    path = workdir / "city.jsonl"
    simulate(path, people=600, days=3, seed=seed, round_=True)
    expected = replay_outputs(path, until, workdir)
    assert len({a["kind"] for a in expected["alerts"]}) >= 6
    assert expected["daily-report"] and expected["round-report"]
    return path, expected


def replay_outputs(path: Path, until: str, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """``closedloop replay``'s alerts, escalations, daily and round reports, by the worker's
    topic names."""
    options = {"alerts": "--alerts", "daily-report": "--reports",
               "round-report": "--round-reports", "escalations": "--escalations"}
    files = {name: workdir / f"replay-{name}.jsonl" for name in options}
    subprocess.run(
        [*CLOSEDLOOP, "replay", str(path), "--until", until, "--quiet",
         *(arg for name, option in options.items() for arg in (option, str(files[name])))],
        check=True, timeout=120,
    )
    return {name: [orjson.loads(line) for line in file.read_bytes().splitlines()]
            for name, file in files.items()}


def assert_published_once(deployment: Deployment,
                          expected: dict[str, list[dict[str, Any]]]) -> None:
    """Each topic named holds exactly the records expected, each once: nothing missing,
    nothing extra, nothing duplicated (alerts by id and bytes, reports by their bytes)."""
    for name, records in expected.items():
        want = Counter(_canonical(r) for r in records)
        got = Counter(_canonical(r) for r in deployment.published(name))
        missing, extra = sorted((want - got).elements()), sorted((got - want).elements())
        assert (missing, extra) == ([], []), (
            f"{name}: {sum(got.values())} published, {sum(want.values())} from replay; "
            f"missing {missing[:5]}; extra or duplicated {extra[:5]}")


def _canonical(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def simulate(path: Path, people: int, days: int, seed: int, *, round_: bool = False,
             inspections: bool = False) -> None:
    """``closedloop simulate``; ``round_`` adds a roster and a city-wide testing round,
    ``inspections`` supervision rounds over the city's units."""
    subprocess.run(
        [*CLOSEDLOOP, "simulate", "--people", str(people), "--days", str(days), "--seed",
         str(seed), "-o", str(path), *(["--round"] if round_ else []),
         *(["--inspections"] if inspections else [])],
        check=True, capture_output=True, timeout=120,
    )


def split_file(path: Path, parts: int) -> Iterator[Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    for index in range(parts):
        part = path.with_name(f"{path.stem}.part{index}.jsonl")
        part.write_bytes(b"".join(lines[index * size:(index + 1) * size]))
        yield part
