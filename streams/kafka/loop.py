"""The worker's consume loop: batches from Kafka through the three stages, and back.

Faust's per-record pipeline costs about 0.26 ms of CPU per record before any rule runs
(``streams/kafka/FAUST_STUDY.md`` §4), more than the whole budget of a worker that must keep
up with a city's testing peak. So the hot path is one aiokafka consumer in the app's group,
subscribed to every topic a stage reads, and this loop, for each batch the consumer hands
over:

1. every record goes to each stage that reads its topic
   (:func:`~closedloop.streams.engine.records.handle_record`, on the partition's
   :class:`~closedloop.streams.engine.store.StageStore`);
2. what the batch made is coalesced (:class:`~closedloop.streams.engine.records.Batch`):
   packs of forwards and contributions, one person-status per person, one clock mark per
   stage partition;
3. those records, each changed key's changelog record and the batch's input offsets are
   written in one Kafka transaction.

Every reader of the internal topics and changelogs reads committed records only, so a crash
anywhere leaves all of a batch or none of it: redelivered onto state restored from the
changelog as it was before the batch, nothing counts twice and nothing is missed. Partitions are
co-partitioned by the range assignor (every member subscribes to the same topics, all with
the same partition count). A rebalance waits for the batch in hand (the lock); a partition
this worker keeps, whose changelog nobody else wrote meanwhile, keeps its state in memory;
any other is restored from its changelog before its first record is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from closedloop.schemas.decode import Rejection, dead_letter
from closedloop.schemas.policy import Policy
from closedloop.streams.engine import gc_tuning, malloc_tuning
from closedloop.streams.engine.clock import wall_now
from closedloop.streams.engine.records import Batch, Handled, Outgoing, Record, handle_record
from closedloop.streams.engine.stage_runner import AnyRunner
from closedloop.streams.engine.stage_runner import runners as make_runners
from closedloop.streams.engine.store import StageStore
from closedloop.streams.engine.topology import TOPOLOGY, partition_of
from closedloop.streams.kafka.changelog_reader import Read, read_latest
from closedloop.streams.kafka.membership import group_instance_id
from closedloop.streams.kafka.metrics import WorkerMetrics, scrape_lags
from closedloop.streams.kafka.reachability import Reachability, describe
from closedloop.streams.kafka.receipts import record_receipt
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.snapshot import Snapshots, topic_ids
from closedloop.streams.kafka.topics import TopicSpec, topic_specs

__all__ = ["CHANGELOG_CONFIG", "MAX_RECORDS", "WorkerLoop", "changelog_topics", "target_partition",
           "transactional_id"]

log = logging.getLogger("closedloop.worker")
T = TypeVar("T")
_encode = msgspec.json.Encoder().encode

MAX_RECORDS = 20_000
"""Records per consumer batch at most: big enough that a catch-up writes each changed key
about once per batch, small enough to apply in a few seconds."""
YIELD_EVERY = 2_000
"""Records applied between two yields to the event loop (a fraction of a second): the
consumer's heartbeats must reach the group coordinator within its session timeout."""
MAX_BATCH_BYTES = 512 * 1024
"""The producer's batch size: a pack and a batch's changelog go out in a few requests (the
broker's default limit is about 1 MB). Each topic partition a batch writes holds one being
filled and one or two sent and not yet acknowledged, so a smaller size lowers the worker's
peak (``closedloop bench memory``: 1 MB, 3,237 bytes a person; 512 KiB, 2,867). It must
hold the largest record a batch writes: a partition's event ids of one hour, one 15-byte
digest per input record (:data:`MAX_RECORDS`), ~400 KB of JSON."""
FETCH_MAX_BYTES = 8 * 1024 * 1024
"""The most one fetch response may carry over all partitions (aiokafka's default: 50 MB). A
worker reads a dozen topics on each of its partitions, and the responses it holds while a
batch is applied and written set its peak memory (``closedloop bench memory``: 2,785
bytes a person with the default, 2,684 with this); a batch still fills from the records
already fetched (up to 4 MiB per partition)."""
MAX_UNACKED_BYTES = 4 * 1024 * 1024
"""Bytes of sent batches a transaction lets wait for the broker's acknowledgement before it
makes more: a testing round's batch writes a status and a state for every person, and
without a bound every batch of it waits in the producer at once, which set the worker's
peak memory (``closedloop bench memory``: 2,867 bytes a person without the bound, 2,785
with it)."""
TRANSACTION_TIMEOUT_MS = 10_000
"""How long a crashed worker's open transaction holds back readers of the partitions it
wrote, when no restart with the same data directory aborts it sooner."""
WALL_TICK_S = 1.0
"""``--clock wall``: how often the wall clock moves every owned partition's clock."""
RETRY_S = 2.0
"""After a failed attempt to recover, how long to wait before the next."""


def transactional_id(app_id: str, data_dir: str) -> str:
    """This worker's transactional id, kept in its data directory: a worker restarted on the
    same directory fences and aborts what its crashed predecessor left open at once; one on
    a fresh directory waits :data:`TRANSACTION_TIMEOUT_MS` for the broker to abort it."""
    path = Path(data_dir) / "transactional-id"
    try:
        known = path.read_text("utf-8").strip()
    except OSError:
        known = ""
    if not known.startswith(f"{app_id}-"):
        known = f"{app_id}-{uuid.uuid4().hex}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(known + "\n", "utf-8")
    return known


CHANGELOG_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    # The log cleaner never compacts a partition's active segment, and Kafka's default
    # segment (1 GiB) holds a whole city's changelog partition: a fresh node would read every
    # record each key ever had. Segments of 16 MiB leave at most that uncompacted; a lower
    # dirty ratio than the default 0.5 lets the cleaner work once a fifth is stale (a
    # testing round rewrites every person), and a segment rolls after an hour even when
    # little is written, so a quiet changelog's tail is compacted too. Compaction only
    # makes a restore read less: its result does not depend on it.
    "segment.bytes": str(16 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.2",
    "segment.ms": str(3_600_000),
}
"""The configuration of a changelog topic the worker creates (one that exists keeps its
own: ``docs/KAFKA.md`` says how to set these on it)."""


def changelog_topics(app_id: str, settings: KafkaSettings) -> list[TopicSpec]:
    """Each stage's compacted changelog topic (``{app_id}-{stage}-state-changelog``)."""
    return [TopicSpec(name=f"{stage}-state", address=f"{app_id}-{stage}-state-changelog",
                      partitions=settings.partitions, replication=settings.replication,
                      config=dict(CHANGELOG_CONFIG))
            for stage in TOPOLOGY.wiring]


class WorkerLoop:
    """The three stages on the partitions this worker is assigned, fed batch by batch."""

    def __init__(self, settings: KafkaSettings, policy: Policy, *, clock: str, app_id: str,
                 data_dir: str, telemetry: WorkerMetrics, max_records: int = MAX_RECORDS
                 ) -> None:
        self.settings, self.policy, self.app_id = settings, policy, app_id
        self.transactional_id = transactional_id(app_id, data_dir)
        self.group_instance_id = group_instance_id(app_id, data_dir)
        self.n = settings.partitions
        self.wall = clock == "wall"
        self.telemetry = telemetry
        self.max_records = max_records
        specs = topic_specs(settings.prefix, self.n, settings.replication)
        self.address = {spec.name: spec.address for spec in specs}
        self.short = {address: name for name, address in self.address.items()}
        self.reads = sorted(self.address[name] for name in TOPOLOGY.readers)
        self.changelogs = changelog_topics(app_id, settings)
        self.changelog = {spec.name.removesuffix("-state"): spec.address
                          for spec in self.changelogs}
        self.changelog_addresses = set(self.changelog.values())
        self.stage_of = {topic: stage for stage, topic in self.changelog.items()}
        self.snapshots = Snapshots(Path(data_dir) / "snapshots", states={
            self.changelog[wiring.name]: wiring.stage.state for wiring in TOPOLOGY.stages})
        self.stores = {wiring.name: StageStore(wiring.stage.state) for wiring in TOPOLOGY.stages}
        # Wall mode: a lapse due before this worker started was missed during downtime.
        catch_up_before = wall_now() - policy.allowed_lateness if self.wall else None
        self.runners: dict[str, AnyRunner] = make_runners(
            policy, self.n, lambda stage, _state: self.stores[stage],
            catch_up_before=catch_up_before, committed=self._committed_of)
        self.lock = asyncio.Lock()
        self.owned: set[int] = set()
        self.ready = False
        self.reach = Reachability()  # fed by the app's probe
        self.problem: str | None = None  # why not ready, while recovering
        self._stopping: Callable[[], bool] = lambda: False
        self.committed: dict[tuple[str, int], int] = {}  # (topic, partition) -> next to read
        self.written: dict[tuple[str, int], int] = {}  # (changelog, partition) -> end we wrote
        self.records_written = 0
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._next_tick = 0.0
        self.consumer: Any = None
        self.producer: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from closedloop.streams.kafka.topics import ensure_topics

        def declare() -> None:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(**self.settings.kafka_python())
            try:
                ensure_topics(admin, self.changelogs)
                self.snapshots.topic_ids = topic_ids(admin, sorted(self.changelog_addresses))
            finally:
                admin.close()

        await asyncio.get_running_loop().run_in_executor(None, declare)
        config = self.settings.aiokafka()
        await self._new_producer()
        self.consumer = AIOKafkaConsumer(
            group_id=self.app_id, group_instance_id=self.group_instance_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=FETCH_MAX_BYTES,
            **config)
        self.consumer.subscribe(self.reads, listener=_listener(self))
        await self.consumer.start()

    async def _new_producer(self) -> None:
        """(Re)start the transactional producer: a new one fences its predecessor and aborts
        whatever transaction it left open."""
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=5, max_batch_size=MAX_BATCH_BYTES,
            transactional_id=self.transactional_id,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, **self.settings.aiokafka())
        await self.producer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Consume until ``stopping()``. A batch whose transaction fails (the cluster went
        away mid-batch) is undone: the loop goes back to the last committed batch, as a
        restarted worker would (:meth:`_recover`). Any other error ends the worker."""
        from aiokafka.errors import KafkaError

        gc_tuning.throughput()
        malloc_tuning.give_back_large_blocks()
        self._stopping = stopping
        while not stopping():
            batch = await self.consumer.getmany(timeout_ms=100, max_records=self.max_records)
            arrived = time.monotonic()
            idle = not any(batch.values())  # before the batch lets its records go
            async with self.lock:
                try:
                    await self._batch(batch, arrived)
                except KafkaError as exc:
                    await self._recover(exc)
                else:
                    await self._snapshot(idle=idle)

    # -- one batch --------------------------------------------------------------------------

    async def _batch(self, batch: dict[Any, list[Any]], arrived: float) -> None:
        sender = _Sender(self.producer)
        direct = _Direct(sender, self.address, self.n)
        out = Batch(self.n, direct)
        offsets: dict[Any, int] = {}
        for tp, messages in batch.items():
            if tp.partition not in self.owned or not messages:
                continue  # fetched before a rebalance took it away: its new owner reads it
            name = self.short[tp.topic]
            offsets[tp] = messages[-1].offset + 1
            while messages:
                chunk = messages[:YIELD_EVERY]
                # Applied records are let go as the batch goes on (the consumer's lists are
                # the batch's own): its statuses and changelog, made at its end, take their
                # room instead of adding to it.
                del messages[:YIELD_EVERY]
                for stage in TOPOLOGY.readers[name]:
                    self._apply(stage, name, tp.topic, tp.partition, chunk, out, arrived)
                del chunk
                # Let the consumer's heartbeat and the web pages run: a batch of 20,000
                # records takes seconds. Every _apply enters its partition afresh.
                await asyncio.sleep(0)
        # No tick while the cluster does not answer: its transaction could not commit.
        if self.wall and self.owned and self.reach.up and time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + WALL_TICK_S
            self._tick(out)
        await self._send(out, offsets, sender, direct.count)

    def _apply(self, stage: str, name: str, topic: str, partition: int, messages: list[Any],
               out: Batch, arrived: float) -> None:
        runner, store, policy = self.runners[stage], self.stores[stage], self.policy
        store.enter(partition)
        for message in messages:
            record = _record(name, partition, message, policy.max_clock_skew)
            done = handle_record(stage, runner, record, policy)
            self._count(stage, name, done, arrived)
            if done.rejection is not None:
                letter = dead_letter(done.rejection, record.value, topic=topic,
                                     partition=partition, offset=message.offset)
                out.direct.append(Outgoing("deadletter", None, _encode(letter)))
            out.add(stage, partition, done.effects)

    def _count(self, stage: str, name: str, done: Handled, arrived: float) -> None:
        telemetry, inc = self.telemetry, self._inc
        if done.consumed:
            inc(telemetry.consumed, name)
        if done.effects.duplicate and done.consumed:
            inc(telemetry.duplicates, name)  # once, by the topic's owner
        if done.action is not None:
            inc(telemetry.actions, done.action)
        if done.action_ignored is not None:
            inc(telemetry.actions_ignored, done.action_ignored)
        if done.effects.actions_dropped:  # kept for an alert that never came
            telemetry.actions_ignored.labels("not_subjects_alert").inc(
                done.effects.actions_dropped)
        if done.effects.counted:  # what a rule ignored: counted, never silently dropped
            for what, n in done.effects.counted.items():
                telemetry.ignored.labels(what).inc(n)
        if done.entry is not None:
            inc(telemetry.entries, *done.entry)
        if done.lag is not None:
            telemetry.entered(*done.lag)
        if done.rejection is not None:
            inc(telemetry.rejected, name, done.rejection.reason)
        if done.error is not None:
            log.error("closedloop %s stage failed on a %s record; dead-lettered", stage, name,
                      exc_info=done.error)
        for alert in done.effects.alerts:
            telemetry.alert_sent(alert.kind, arrived)
        for report in done.effects.round_reports:
            telemetry.round_reported(report)

    def _inc(self, metric: Any, *labels: str) -> None:
        """``metric.labels(*labels).inc()``, the labelled child looked up once."""
        child = self._children.get((id(metric), labels))
        if child is None:
            child = self._children[(id(metric), labels)] = metric.labels(*labels)
        child.inc()

    def _tick(self, out: Batch) -> None:
        """Live mode: the wall clock moves the watermark to now - lateness (CONTRACT.md §1)."""
        at = wall_now() - self.policy.allowed_lateness
        for stage in (wiring.name for wiring in TOPOLOGY.stages if wiring.clocked):
            runner, store = self.runners[stage], self.stores[stage]
            for partition in sorted(self.owned):
                store.enter(partition)
                out.add(stage, partition, runner.on_tick(partition, at))

    async def _send(self, out: Batch, offsets: dict[Any, int], sender: _Sender,
                    written: int) -> None:
        """Send the batch's records, its changelog and its input offsets in one transaction.

        Readers of the internal topics and of the changelog read committed records only, so a
        crash at any point leaves either all of a batch or none of it: a contribution is
        counted once, a state is never ahead of or behind the offsets it covers. ``sender``
        already holds the ``written`` records the batch wrote as it made them
        (:class:`_Direct`).
        """
        stores = self.stores
        for stage, runner in self.runners.items():
            runner.flush(stores[stage].enter)
        # Records and changelog values are made one at a time and go straight into the
        # producer's batches: a round's batch changes every person, and holding all their
        # statuses and states at once (as small objects, in arenas that stay fragmented
        # afterwards) would set the worker's peak memory.
        writes = self._writes(out, written)
        first = next(writes, None)
        if first is not None or written or offsets:
            async with self.producer.transaction():
                await sender.send_full()
                if first is not None:
                    await sender.add(*first)
                    for write in writes:
                        await sender.add(*write)
                await sender.flush()
                if offsets:
                    await self.producer.send_offsets_to_transaction(offsets, self.app_id)
            # leaving the block committed the transaction: every batch was acknowledged
            for (topic, partition), end in sender.ends().items():
                if topic in self.changelog_addresses:
                    self.written[(topic, partition)] = end
            self.records_written += sender.records
            for tp, offset in offsets.items():
                self.committed[(self.short[tp.topic], tp.partition)] = offset
        for (stage, partition), keys in out.touched.items():
            self.stores[stage].enter(partition)
            self.telemetry.touched(stage, partition, keys, self.stores[stage].get)
        for stage, runner in self.runners.items():
            self.telemetry.index_size.labels(stage).set(runner.open_deadlines())

    def _writes(self, out: Batch, written: int
                ) -> Iterator[tuple[str, int, bytes | None, bytes | None]]:
        """(topic address, partition, key, value) of the batch's records after the
        ``written`` ones, then of its changelog, each made only when the sender asks for
        it."""
        stores = self.stores
        records = out.stream(self.runners, lambda stage, p: stores[stage].enter(p),
                             lambda stage, p: stores[stage].published_in(p))
        for number, record in enumerate(records, written):
            yield (self.address[record.topic], target_partition(record, self.n, number),
                   record.key, record.value)
        for stage, store in stores.items():
            topic = self.changelog[stage]
            for partition, key, value in store.changes():
                yield topic, partition, key, value

    async def _snapshot(self, idle: bool) -> None:
        """After a committed batch, the snapshot of at most one stage partition: its state
        now is its changelog up to the end this worker's last write left
        (:mod:`~closedloop.streams.kafka.snapshot`). Called holding the batch lock: nothing
        changes the state while the snapshot yields to the event loop between chunks."""
        due = self.snapshots.due(
            self.written, lambda topic, p: len(self.stores[self.stage_of[topic]].parts.get(p, ())),
            idle)
        if due is not None:
            topic, partition = due
            await self.snapshots.take_async(
                topic, partition, self.written[due],
                self.stores[self.stage_of[topic]].parts.get(partition, {}))

    # -- partitions -------------------------------------------------------------------------

    async def revoked(self) -> None:
        """A rebalance begins: wait for the batch in hand (it commits), then hold."""
        async with self.lock:
            self.ready = False

    async def assigned(self, assigned: set[Any]) -> None:
        """Keep what this worker still owns, restore what is new, forget the rest."""
        cpu = time.process_time()  # what came before (start-up) is not the partitions' work
        partitions = {tp.partition for tp in assigned}

        async def take() -> list[int]:  # again from the start if the cluster goes away
            for gone in sorted(self.owned - partitions):
                self._forget(gone)
            bounds = await self._changelog_bounds(partitions)
            fresh = sorted(p for p in partitions if p not in self.owned or any(
                not _ours(bounds[(self.changelog[stage], p)][1],
                          self.written.get((self.changelog[stage], p)))
                for stage in TOPOLOGY.wiring))
            for partition in fresh:
                self._forget(partition)
            if fresh:
                await self._restore(fresh, bounds)
            for tp in assigned:
                committed = await self.consumer.committed(tp)
                if committed is not None:
                    self.committed[(self.short[tp.topic], tp.partition)] = committed
            return fresh

        async with self.lock:
            fresh = await self._retrying("taking over partitions", take)
            self.owned = partitions
            self.ready = True
        log.info("closedloop: assigned partitions %s (restored %s) at process CPU %.3f s",
                 sorted(partitions), fresh, cpu)
        log.info("Worker ready")  # what deployment scripts and tests wait for

    # -- failures -----------------------------------------------------------------------------

    async def _recover(self, failure: BaseException) -> None:
        """Undo a batch whose transaction failed, holding the lock. Its records were aborted
        or never written, but the state it changed in memory and the consumer's positions
        are ahead of what Kafka holds. Once the cluster answers, a new producer fences the
        old one (whose transaction the broker may have aborted meanwhile), every owned
        partition is restored from its changelog, and the consumer goes back to the
        committed offsets: the batch is read and applied again, nothing counts twice."""
        self.ready = False
        partitions = sorted(self.owned)
        self.problem = f"a transaction failed ({describe(failure)})"
        log.warning("closedloop: %s; restoring partitions %s once Kafka answers",
                    self.problem, partitions)

        async def reset() -> None:
            with suppress(Exception):  # it failed already: whatever it still says is moot
                await asyncio.wait_for(self.producer.stop(), RETRY_S)
            await self._new_producer()
            for partition in partitions:
                self._forget(partition)
            bounds = await self._changelog_bounds(set(partitions))
            if partitions:
                await self._restore(partitions, bounds)
            self.owned = set(partitions)
            for tp in self.consumer.assignment():
                offset = self.committed.get((self.short[tp.topic], tp.partition))
                if offset is None:  # nothing committed yet: from the start, as on assignment
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, offset)

        await self._retrying("restoring after a failed transaction", reset)
        self.problem = None
        self.ready = True
        log.warning("closedloop: partitions %s restored; going on from the last committed "
                    "batch", partitions)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until it gets through: after a Kafka error, once the cluster answers
        again (and at most every :data:`RETRY_S`); raises if the worker is stopping."""
        from aiokafka.errors import KafkaError

        while True:
            try:
                return await attempt()
            except KafkaError as exc:
                if self._stopping():
                    raise
                log.warning("closedloop: %s failed (%s); trying again", what, describe(exc))
            await asyncio.sleep(RETRY_S)
            await self.reach.wait_up()

    def _forget(self, partition: int) -> None:
        for stage, runner in self.runners.items():
            runner.revoke(partition)
            self.stores[stage].drop(partition)
            self.telemetry.revoked(stage, partition)
            self.written.pop((self.changelog[stage], partition), None)
        self.owned.discard(partition)

    async def _changelog_bounds(self, partitions: set[int]
                                ) -> dict[tuple[str, int], tuple[int, int]]:
        """(changelog, partition) -> (its first offset, its end as a read-committed reader
        sees it)."""
        from aiokafka.structs import TopicPartition

        tps = [TopicPartition(topic, p) for topic in self.changelog.values() for p in partitions]
        if not tps:
            return {}

        async def bounds(consumer: Any) -> tuple[dict[Any, int], dict[Any, int]]:
            return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)

        firsts, ends = await self._restorer_call(bounds)
        return {(tp.topic, tp.partition): (int(firsts[tp]), int(ends[tp])) for tp in tps}

    async def _restorer_call(self, call: Callable[[Any], Any]) -> Any:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(enable_auto_commit=False, isolation_level="read_committed",
                                    **self.settings.aiokafka())
        await consumer.start()
        try:
            return await call(consumer)
        finally:
            await consumer.stop()

    async def _restorer_read(self, ranges: dict[tuple[str, int], tuple[int, int]],
                             done: Callable[[tuple[str, int], dict[bytes | None, bytes | None]],
                                            None]) -> Read:
        """Each changelog partition of ``ranges`` read from its start to its end, each key's
        last committed value handed to ``done`` as soon as a partition is read
        (:mod:`~closedloop.streams.kafka.changelog_reader`)."""
        from aiokafka.client import AIOKafkaClient

        if all(start >= end for start, end in ranges.values()):  # snapshots at the ends
            return await read_latest(None, ranges, done=done)
        client = AIOKafkaClient(**self.settings.aiokafka())
        await client.bootstrap()
        try:
            return await read_latest(client, ranges, done=done)
        finally:
            await client.close()

    async def _restore(self, partitions: list[int],
                       bounds: dict[tuple[str, int], tuple[int, int]]) -> None:
        """Read each stage's changelog of ``partitions`` to its end: from the offset of the
        partition's snapshot in the data directory if there is one it can use, else from
        the start. Each is rebuilt as soon as it is read, while the others are fetched."""
        started = time.monotonic()
        wheres = [(topic, p) for topic in self.changelog.values() for p in partitions]
        ends = {where: bounds[where][1] for where in wheres}
        snapshots = self.snapshots.load_all(ends)
        restored = 0

        def rebuild(where: tuple[str, int], latest: dict[bytes | None, bytes | None]) -> None:
            nonlocal restored
            topic, partition = where
            stage = self.stage_of[topic]
            store, runner, snapshot = self.stores[stage], self.runners[stage], snapshots[where]
            restored += store.restore(partition, latest.items()) if snapshot is None \
                else snapshot.restore(store, partition, latest.items())
            latest.clear()  # its values are decoded: not held till the others are read
            self.written[where] = ends[where]
            store.enter(partition)
            rows = store.parts[partition]
            runner.assign(partition, rows)
            self.telemetry.assigned(stage, partition, rows.items())

        # from the snapshot's offset, or the changelog's first (records deleted before it
        # are gone whoever reads)
        read = await self._restorer_read({where: (max(bounds[where][0], 0 if snapshot is None
                                                      else snapshot.offset), ends[where])
                                          for where, snapshot in snapshots.items()}, rebuild)
        read_count = read.records
        log.info("closedloop: restored %s keys of partitions %s in %.3f s (%s from snapshots, "
                 "%s changelog records read)", restored, partitions, time.monotonic() - started,
                 sum(s.keys for s in snapshots.values() if s is not None),
                 read_count)

    # -- what the runners and /metrics ask ----------------------------------------------------

    def _committed_of(self, topic: str, partition: int) -> int | None:
        return self.committed.get((topic, partition))

    def clocks(self) -> dict[str, dict[int, int]]:
        return {stage: {p: runner.effective_clock(p) for p in sorted(self.owned)}
                for stage, runner in self.runners.items()}

    async def lags(self) -> list[tuple[str, int, int]]:
        """Unread records of every input partition this worker is assigned: the high
        watermark less the consumer's position (which steps over transaction markers)."""
        consumer = self.consumer
        if consumer is None:
            return []
        positions: dict[tuple[str, int], int] = {}
        for tp in list(consumer.assignment()):
            if tp.topic in self.short:
                try:
                    positions[(self.short[tp.topic], tp.partition)] = \
                        await consumer.position(tp)
                except Exception:  # moving away in a rebalance: left out of this scrape
                    continue
        from aiokafka.structs import TopicPartition

        return scrape_lags(
            positions, lambda t, p: consumer.highwater(TopicPartition(self.address[t], p)),
            lambda t, p: positions[(t, p)] - 1, self._committed_of)


def _listener(loop: WorkerLoop) -> Any:
    """aiokafka's rebalance callbacks, handed to the loop."""
    from aiokafka.abc import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            await loop.revoked()

        async def on_partitions_assigned(self, assigned: Any) -> None:
            await loop.assigned(set(assigned))

    return Listener()

class _Direct:
    """A batch's records sent as made, appended to the sender's batches at once (they are
    sent when the batch's transaction begins), numbered as :func:`target_partition` counts
    them."""

    __slots__ = ("address", "count", "n", "sender")

    def __init__(self, sender: _Sender, address: dict[str, str], partitions: int) -> None:
        self.sender, self.address, self.n = sender, address, partitions
        self.count = 0

    def append(self, record: Outgoing, /) -> None:
        self.sender.append(self.address[record.topic],
                           target_partition(record, self.n, self.count), record.key,
                           record.value)
        self.count += 1

    def extend(self, records: Iterable[Outgoing], /) -> None:
        for record in records:
            self.append(record)


class _Sender:
    """Records into aiokafka batch builders, one per topic partition: a record appended costs
    a fraction of a ``send`` (no future and no accumulator lookup per record)."""

    def __init__(self, producer: Any, max_unacked: int = MAX_UNACKED_BYTES) -> None:
        self.producer = producer
        self.max_unacked = max_unacked
        self.waits = 0  # times a batch's acknowledgement was awaited to stay under the bound
        self.builders: dict[tuple[str, int], Any] = {}
        self.sent: list[tuple[tuple[str, int], Any, int]] = []  # (where, future, records)
        self.records = 0
        self.full: list[tuple[tuple[str, int], Any]] = []  # filled, in order, not yet sent
        self.unacked: deque[tuple[Any, int]] = deque()  # (future, bytes), oldest first
        self.unacked_bytes = 0

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None
               ) -> None:
        """Add a record; a full batch waits in :attr:`full` for :meth:`send_full` (which
        needs the transaction begun)."""
        where = (topic, partition)
        self.records += 1
        builder = self.builders.get(where)
        if builder is None:
            builder = self.builders[where] = self.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:  # full
            self.full.append((where, builder))
            builder = self.builders[where] = self.producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit in a "
                                 f"batch for {topic}")

    async def add(self, topic: str, partition: int, key: bytes | None,
                  value: bytes | None) -> None:
        """Add a record within the transaction: a batch it fills is sent at once."""
        self.append(topic, partition, key, value)
        if self.full:
            await self.send_full()

    async def send_full(self) -> None:
        full, self.full = self.full, []
        for where, builder in full:
            await self._send(where, builder)

    async def _send(self, where: tuple[str, int], builder: Any) -> None:
        count = builder.record_count()
        if count:
            size = builder.size()
            future = await self.producer.send_batch(builder, where[0], partition=where[1])
            self.sent.append((where, future, count))
            self.unacked.append((future, size))
            self.unacked_bytes += size
            while self.unacked_bytes > self.max_unacked:
                oldest, size = self.unacked.popleft()
                self.unacked_bytes -= size
                self.waits += 1
                await oldest  # raises if it failed: the transaction is then aborted

    async def flush(self) -> None:
        """Send what is left and wait for every batch's acknowledgement (raises if one
        failed: the transaction is then aborted)."""
        await self.send_full()
        for where, builder in self.builders.items():
            await self._send(where, builder)
        self.builders.clear()
        self.results = await asyncio.gather(*(future for _, future, _ in self.sent))

    def ends(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset after the last record written there."""
        ends: dict[tuple[str, int], int] = {}
        for (where, _, count), meta in zip(self.sent, self.results, strict=True):
            ends[where] = max(ends.get(where, 0), meta.offset + count)
        return ends


def target_partition(record: Outgoing, partitions: int, number: int) -> int:
    """Where a record goes: its own partition if it names one, else its key's, as Kafka's
    default partitioner places it (an alert by subject, a status by person); a keyless one
    (a dead letter) by its ``number`` in the batch, spread over the partitions."""
    if record.partition is not None:
        return record.partition
    if record.key is not None:
        return partition_of(record.key.decode("utf-8", "replace"), partitions)
    return number % partitions


def _ours(end: int, written: int | None) -> bool:
    """Is a changelog partition's committed end the one this worker's last write left? (Its
    transaction's commit marker takes one offset after the last record.)"""
    return written is not None and end in (written, written + 1)


def _record(name: str, partition: int, message: Any, max_clock_skew: int) -> Record:
    """A consumed message as a stage receives it, with its receipt (CONTRACT.md §1): its
    ``received_at`` header, else its timestamp capped at now; a header that is no plausible
    instant refuses the record (its owner dead-letters it)."""
    value = message.value or b""
    receipt = record_receipt(message.headers, message.timestamp, time.time(), max_clock_skew)
    if isinstance(receipt, Rejection):
        return Record(name, partition, message.offset, message.key, value, refused=receipt)
    return Record(name, partition, message.offset, message.key, value, receipt.bound,
                  receipt.own, lag_from=receipt.lag_from)
