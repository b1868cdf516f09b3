"""The Faust app of `closedloop worker`: three keyed stages on Kafka.

Three thin Faust agents, one per keyed stage, each calling a :class:`StageRunner` (plain
Python, unit-tested without a broker) and sending what it returns:

- tube agent: ``sampling``, ``lab``, ``tube-ticks`` and ``action`` (co-partitioned, key
  tube_id; an action keyed by a tube handles one of the tube's alerts);
- person agent: ``travel``, ``followup``, ``cohort``, ``action`` and ``person-tests`` (the
  tube join's forwards, its clock marks and the person ticks; key person_id);
- report agent: ``report-parts`` (contributions and clock marks, key district; the person
  partitions' shares of testing rounds' reports, key round_id), to ``daily-report`` and
  ``round-report``.

``--clock wall``: a leader-only timer ticks every partition of both stages twice a second, so
deadlines fire within about a second while inputs are idle; a worker that starts after
downtime fires each lapse it missed once, marked ``details.catch_up = true``.
``--clock event``: only event time and the ticks of ``closedloop clock --until`` move it.

``action`` belongs to the person stage (it dead-letters, counts and clocks it); the tube
stage applies the valid ones quietly and leaves its clock to sampling and lab. Escalated
alerts go to ``escalations``, never to ``alerts``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import orjson

from closedloop.agents.state import Keyed
from closedloop.schemas.decode import Rejection, dead_letter
from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import wall_now
from closedloop.streams.engine.records import Record, handle_record, route, tick_record
from closedloop.streams.engine.stage_runner import (
    META_PREFIX,
    Effects,
    PartitionMeta,
)
from closedloop.streams.engine.stage_runner import runners as make_runners
from closedloop.streams.engine.topology import (
    READERS,
    TICK_TOPICS,
    WIRING,
    partition_of,
)
from closedloop.streams.kafka.metrics import WorkerMetrics, scrape_lags
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import topic_specs

__all__ = ["build_app", "serve"]

log = logging.getLogger("closedloop.worker")
_encode = msgspec.json.Encoder().encode


def build_app(settings: KafkaSettings, policy: Policy, *, clock: str, app_id: str,
              data_dir: str, web_port: int) -> Any:
    """The Faust app with its topics, tables, agents and timers; nothing starts here."""
    import faust
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    n = settings.partitions
    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=data_dir,
        topic_partitions=n,
        topic_replication_factor=settings.replication,
        table_standby_replicas=0 if settings.replication == 1 else 1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_port=web_port,
        web_bind="127.0.0.1" if os.environ.get("CLOSEDLOOP_WEB_BIND") is None
        else os.environ["CLOSEDLOOP_WEB_BIND"],
        # Every topic below is raw bytes, and so are the tables (value_type=bytes): each row
        # is the msgspec JSON of a key's typed state (see _StateTable).
        value_serializer="json",
        key_serializer="raw",
        producer_linger=0.01,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=2.0,
    )
    specs = topic_specs(settings.prefix, n, 1)
    address = {spec.name: spec.address for spec in specs}
    # Offsets are contiguous except where compaction removed records: only there may they skip.
    gapless = {spec.name for spec in specs if spec.config["cleanup.policy"] != "compact"}

    def topic(*names: str) -> Any:
        return app.topic(*(address[name] for name in names), key_type=bytes,
                         value_type=bytes, partitions=n, key_serializer="raw",
                         value_serializer="raw")

    tube_in = topic(*WIRING["tube"].reads)
    person_in = topic(*WIRING["person"].reads)
    report_in = topic(*WIRING["report"].reads)
    out = {name: topic(name) for name in
           ("alerts", "escalations", "person-status", "daily-report", "round-report",
            "deadletter", "person-tests",
            "report-parts", "tube-ticks")}
    short = {v: k for k, v in address.items()}

    def state_table(name: str) -> Any:
        return app.Table(name, default=None, partitions=n, key_type=bytes, value_type=bytes)

    tube_table = state_table("tube-state")
    person_table = state_table("person-state")
    report_table = state_table("report-state")
    tables = {"tube": tube_table, "person": person_table, "report": report_table}
    # Wall mode: a lapse due before this worker started was missed during downtime.
    catch_up_before = wall_now() - policy.allowed_lateness if clock == "wall" else None
    from faust.types import TP

    earliest: dict[Any, int] = {}  # partition -> its earliest offset, asked once

    def committed(topic: str, partition: int) -> int | None:
        """The group's committed offset (the next to read) of an input partition, if known."""
        value = app.consumer._committed_offset.get(TP(address[topic], partition))
        return None if value is None else int(value)

    def table_of(stage: str, state: type[Keyed]) -> _StateTable[Keyed]:
        return _StateTable(tables[stage], state)

    runners = make_runners(policy, n, table_of, catch_up_before=catch_up_before,
                           committed=committed)
    telemetry = WorkerMetrics(policy)  # every closedloop_* metric (streams/kafka/metrics.py)
    for name in sorted(gapless & set(READERS)):
        telemetry.offset_gaps.labels(name)  # a zero series from the start, not from the first gap
    state: dict[str, Any] = {"ready": False}
    stage_topic = {name: address[wiring.reads[0]] for name, wiring in WIRING.items()}

    def rebuild(stage: str) -> None:
        """After recovery: the assigned partitions' deadline indexes and clocks, from the table.

        Faust keeps keys of revoked partitions in the local store; only the keys of the
        partitions this worker owns are indexed (the others are never fired from here).
        """
        table = tables[stage]
        runner = runners[stage]
        active = {tp.partition for tp in app.assignor.assigned_actives()
                  if tp.topic == stage_topic[stage]}
        by_partition: dict[int, list[str]] = {p: [] for p in active}
        for raw_key in list(table.keys()):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            if key.startswith(META_PREFIX):
                owner = int(key[len(META_PREFIX):])
            else:
                owner = partition_of(key, n)
            if owner in active and not key.startswith(META_PREFIX):
                by_partition[owner].append(key)
        for gone in set(runner.partitions) - active:
            runner.revoke(gone)
            telemetry.revoked(stage, gone)
        for part, keys in by_partition.items():
            runner.assign(part, keys)
            telemetry.assigned(stage, part, ((key, runner.table.get(key)) for key in keys))

    for stage_name, table in tables.items():
        def make(stage: str) -> Any:
            async def on_recover() -> None:
                rebuild(stage)
                state["ready"] = True
            return on_recover
        table.on_recover(make(stage_name))

    @app.on_partitions_revoked.connect
    async def _revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        state["ready"] = False

    async def send_effects(stage: str, partition: int, fx: Effects,
                           arrived: float | None = None) -> None:
        for record in route(stage, partition, fx, runners[stage], n):
            await out[record.topic].send(key=record.key, value=record.value,
                                         partition=record.partition)
        for alert in fx.alerts:
            telemetry.alert_sent(alert.kind, arrived)
        for report in fx.round_reports:
            telemetry.round_reported(report)
        telemetry.index_size.labels(stage).set(runners[stage].open_deadlines())
        telemetry.touched(stage, partition, fx.touched, runners[stage].table.get)

    async def reject(rejection: Rejection, value: bytes, message: Any) -> None:
        telemetry.rejected.labels(short.get(message.topic, message.topic), rejection.reason).inc()
        letter = dead_letter(rejection, value, topic=message.topic,
                             partition=message.partition, offset=message.offset)
        await out["deadletter"].send(value=_encode(letter))

    locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def handle(stage: str, event: Any) -> None:
        """Handle one record in offset order: fill a gap first, skip what was handled."""
        message = event.message
        name = short.get(message.topic, message.topic)
        if name not in gapless:
            await handle_one(stage, event)
            return
        async with locks.setdefault((stage, message.partition), asyncio.Lock()):
            runner = runners[stage]
            if runner.already(message.partition, name, message.offset):
                return  # redelivered (Faust seeks to the committed offset on a rebalance)
            expected = await expected_or(stage, message.topic, message.partition,
                                         message.offset)
            if message.offset > expected:
                await fill(stage, message.topic, message.partition, expected, message.offset)
            await handle_one(stage, event)

    async def expected_of(stage: str, topic: str, partition: int) -> int:
        """The next offset the stage should handle; with nothing handled or committed yet,
        the partition's earliest (the group starts there: auto_offset_reset=earliest)."""
        expected = runners[stage].expected(partition, short[topic])
        if expected is None:
            tp = TP(topic, partition)
            if tp not in earliest:  # asked once per partition: it moves only with retention
                earliest[tp] = int((await app.consumer.earliest_offsets(tp)).get(tp, 0))
            expected = earliest[tp]
        return expected

    async def expected_or(stage: str, topic: str, partition: int, offset: int) -> int:
        """``expected_of``, or ``offset`` if the broker cannot say now (never drop a record
        for want of an answer: a gap not filled now is found by the tail check)."""
        try:
            return await expected_of(stage, topic, partition)
        except Exception:
            log.warning("closedloop %s: no earliest offset for %s[%s] now", stage,
                        short[topic], partition)
            return offset

    async def fill(stage: str, topic: str, partition: int, start: int, end: int) -> None:
        """Read offsets ``start`` .. ``end - 1`` around Faust and handle them, in order."""
        name = short[topic]
        telemetry.offset_gaps.labels(name).inc(end - start)
        log.warning("closedloop %s: %s[%s] offsets %s..%s were skipped by the consumer; "
                    "reading them", stage, name, partition, start, end - 1)
        missing = await asyncio.get_running_loop().run_in_executor(
            None, _read_range, settings, topic, partition, start, end)
        for record in missing:
            if not runners[stage].already(partition, name, record.message.offset):
                await _guarded(handle_one, stage, record)

    watch: dict[tuple[str, str, int], int] = {}
    requests = {"tube": "tube-ticks", "person": "person-tests", "report": "report-parts"}

    @app.timer(interval=2.0)
    async def tails() -> None:
        """Records Faust read past but never delivered, with no later record to reveal it.

        A partition whose next expected offset is below the high watermark, while the
        consumer is not reading it (or no longer knows where it is, after a rebalance), and
        that made no progress since the last look: its tail was skipped (a lone record, or
        the last ones before a ``--until`` tick). The stage is asked, through its own
        internal topic, to read them: tables may only change inside stream iteration.
        """
        if app.rebalancing:
            return
        consumer = app.consumer
        seen = dict(watch)
        watch.clear()
        for tp in list(consumer.assignment()):
            name = short.get(tp.topic)
            if name not in gapless:
                continue
            try:
                highwater = consumer.highwater(tp)
                read = consumer._read_offset.get(tp)  # no public accessor
                if highwater is None or (read is not None and read + 1 < highwater):
                    continue  # not fetched yet, or Faust is still reading it
                for stage in READERS.get(name, ()):
                    expected = await expected_of(stage, tp.topic, tp.partition)
                    if expected >= highwater:
                        continue
                    key = (stage, name, tp.partition)
                    if seen.get(key) != expected:
                        watch[key] = expected  # look again next time: it may be on its way
                        continue
                    request = orjson.dumps({"type": "fill", "topic": name, "end": highwater})
                    await out[requests[stage]].send(value=request, partition=tp.partition)
            except Exception:  # a partition moving away mid-look: look again next time
                log.debug("closedloop: tail check of %s skipped", tp, exc_info=True)

    async def handle_one(stage: str, event: Any) -> None:
        message = event.message
        try:
            await handle_input(stage, event)
        finally:
            runners[stage].handled(message.partition, short.get(message.topic, message.topic),
                                   message.offset)

    async def handle_input(stage: str, event: Any) -> None:
        message = event.message
        # arrival: when Faust's consumer handed the record over (its monitor stamps time_in)
        arrived = getattr(message, "time_in", None) or time.monotonic()
        name = short.get(message.topic, message.topic)
        record = Record(name, message.partition, message.offset, message.key,
                        event.value if event.value is not None else b"", _receipt(message))
        done = handle_record(stage, runners[stage], record, policy)
        if done.consumed:
            telemetry.consumed.labels(name).inc()
        if done.effects.duplicate:
            telemetry.duplicates.labels(name).inc()  # only where the key's state is
        if done.action is not None:
            telemetry.actions.labels(done.action).inc()
        if done.entry is not None:
            telemetry.entries.labels(*done.entry).inc()
        if done.error is not None:
            log.error("closedloop %s stage failed on %s[%s]@%s; dead-lettered", stage,
                      name, message.partition, message.offset, exc_info=done.error)
        if done.rejection is not None:
            await reject(done.rejection, record.value, message)
        if done.fill is not None:
            topic, end = address[done.fill[0]], done.fill[1]
            start = await expected_of(stage, topic, message.partition)
            if start < end:
                await fill(stage, topic, message.partition, start, end)
            return
        await send_effects(stage, message.partition, done.effects, arrived)

    @app.agent(tube_in, name="tube-join")
    async def tube_agent(stream: Any) -> None:
        async for event in stream.events():
            await _guarded(handle, "tube", event)

    @app.agent(person_in, name="person-loop")
    async def person_agent(stream: Any) -> None:
        async for event in stream.events():
            await _guarded(handle, "person", event)

    @app.agent(report_in, name="daily-closure")
    async def report_agent(stream: Any) -> None:
        async for event in stream.events():
            await _guarded(handle, "report", event)

    if clock == "wall":
        @app.timer(interval=0.5, on_leader=True)
        async def wall_ticks() -> None:
            # live mode: the wall clock moves the watermark to now - lateness (CONTRACT.md §1)
            tick = tick_record(wall_now() - policy.allowed_lateness)
            for name in TICK_TOPICS:
                for target in range(n):
                    await out[name].send(value=tick, partition=target)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = bool(state["ready"]) and not app.rebalancing
        return web.json({"ready": ok}, status=200 if ok else 503)

    def consumer_lags() -> list[tuple[str, int, int]]:
        """Unread records of every agent input partition this worker is assigned."""
        consumer = app.consumer
        owned = [(short[tp.topic], tp.partition) for tp in consumer.assignment()
                 if tp.topic in short]
        return scrape_lags(
            owned, lambda t, p: consumer.highwater(TP(address[t], p)),
            lambda t, p: consumer._read_offset.get(TP(address[t], p)),  # no public accessor
            committed)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        clocks = {stage: {p: runner.effective_clock(p) for p in list(runner.partitions)}
                  for stage, runner in runners.items()}
        telemetry.refresh(wall_now(), clocks, consumer_lags())
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.closedloop_runners = runners  # for tests and introspection
    return app


def _receipt(message: Any) -> float | None:
    """The record's Kafka timestamp (epoch seconds): the receipt of the implausible-time rule
    (CONTRACT.md §1), never later than now (a producer's clock may set it). A record without
    one (-1, or none) leaves that bound unchecked."""
    stamp = getattr(message, "timestamp", None)
    if not isinstance(stamp, int | float) or stamp <= 0:
        return None
    return min(float(stamp), time.time())


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    time_in: float | None = None


@dataclass(frozen=True, slots=True)
class _Record:
    """A record read around Faust, shaped like the part of a Faust event the handlers use."""

    message: _Message
    value: bytes | None


def _read_range(settings: KafkaSettings, topic: str, partition: int, start: int, end: int
                ) -> list[_Record]:
    """Records ``start`` .. ``end - 1`` of one partition, read with a group-less consumer.

    Used when Faust skipped records (see ``StageRunner.gap``): reading them here, in order,
    does not fight Faust's own fetch position. Gives up after 60 s with what it has, and
    logs what stays missing.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_python())
    records: list[_Record] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + 60
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(
                    _Record(_Message(topic, partition, r.offset, r.key, time.monotonic()),
                            r.value)
                    for r in batch if r.offset < end)
    finally:
        consumer.close()
    if len(records) < end - start:
        log.error("closedloop: %s[%s] offsets %s..%s: read %s records of the gap",
                  topic, partition, start, end - 1, len(records))
    return records


async def _guarded(handler: Any, stage: str, event: Any) -> None:
    """One bad message must never stop an agent: log it (no payload) and go on."""
    try:
        await handler(stage, event)
    except Exception:
        message = event.message
        log.exception("closedloop %s stage failed on %s[%s]@%s; skipped", stage,
                      message.topic, message.partition, message.offset)


S = TypeVar("S", bound=Keyed)


class _StateTable(Generic[S]):
    """A stage's Faust table seen through str keys and typed values.

    The table's keys and values are raw bytes: a key's row is the msgspec JSON of its state
    (``S``), or under :func:`~closedloop.streams.runner.meta_key` of its partition's clock
    (:class:`PartitionMeta`). A value read is decoded afresh, so a change counts only once
    written back, which the stage always does (a Faust table changelogs assignments only).
    """

    def __init__(self, table: Any, state: type[S]) -> None:
        self._table = table
        self._decode_state = msgspec.json.Decoder(state).decode
        self._decode_meta = msgspec.json.Decoder(PartitionMeta).decode

    def get(self, key: str) -> S | PartitionMeta | None:
        raw = self._table.get(key.encode())
        if raw is None:
            return None
        if key.startswith(META_PREFIX):
            return self._decode_meta(raw)
        return self._decode_state(raw)

    def __setitem__(self, key: str, value: S | PartitionMeta) -> None:
        self._table[key.encode()] = _encode(value)

    def __delitem__(self, key: str) -> None:
        del self._table[key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._table.get(key.encode()) is not None


def _credentials(settings: KafkaSettings) -> Any:
    if not settings.security_protocol.startswith("SASL"):
        if settings.security_protocol == "SSL":
            import ssl

            import faust

            return faust.SSLCredentials(ssl.create_default_context(cafile=settings.ca_file))
        return None
    import ssl

    import faust

    context = ssl.create_default_context(cafile=settings.ca_file) \
        if settings.security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(
        username=settings.username, password=settings.password(),
        mechanism=settings.sasl_mechanism, ssl_context=context,
    )


def serve(app: Any, loglevel: str) -> None:
    """Run ``app`` in this process until SIGTERM (a clean stop commits what was handled)."""
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # Faust's spinner sets the root logger to DEBUG (slow)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_and_shutdown())
    worker.execute_from_commandline()
