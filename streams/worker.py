"""Run the stream processor on Kafka: ``closedloop worker``.

Three thin Faust agents, one per keyed stage, each calling a :class:`StageRunner` (plain
Python, unit-tested without a broker) and sending what it returns:

- tube agent: ``sampling``, ``lab``, ``tube-ticks`` and ``action`` (co-partitioned, key
  tube_id; an action keyed by a tube handles one of the tube's alerts);
- person agent: ``travel``, ``followup``, ``cohort``, ``action`` and ``person-tests`` (the
  tube join's forwards, its clock marks and the person ticks; key person_id);
- report agent: ``report-parts`` (contributions and clock marks; key district).

``--clock wall``: a leader-only timer ticks every partition of both stages twice a second, so
deadlines fire within about a second while inputs are idle; a worker that starts after
downtime fires each lapse it missed once, marked ``details.catch_up = true``.
``--clock event``: only event time and the ticks of ``closedloop produce --until`` move it.

``action`` belongs to the person stage (it dead-letters, counts and clocks it); the tube
stage applies the valid ones quietly and leaves its clock to sampling and lab. Escalated
alerts go to ``escalations``, never to ``alerts``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from closedloop.agents import person as person_rules
from closedloop.schemas.decode import Rejection, dead_letter, decode_event
from closedloop.schemas.events import Action
from closedloop.schemas.policy import Policy, PolicyError, load_policy
from closedloop.streams.clock import wall_now
from closedloop.streams.metrics import WorkerMetrics, scrape_lags
from closedloop.streams.runner import META_PREFIX, Effects, StageRunner
from closedloop.streams.settings import KafkaSettings
from closedloop.streams.topics import INPUT_STAGE, ensure_topics, topic_specs
from closedloop.streams.topology import PERSON, REPORT, TUBE

__all__ = ["add_parser", "build_app", "run"]

log = logging.getLogger("closedloop.worker")
_encode = msgspec.json.Encoder().encode


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as producers use)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


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
        # Tables (keyed state) are changelogged as JSON; every topic below is raw bytes.
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

    tube_in = topic("sampling", "lab", "tube-ticks", "action")
    person_in = topic("travel", "followup", "cohort", "action", "person-tests")
    report_in = topic("report-parts")
    out = {name: topic(name) for name in
           ("alerts", "escalations", "person-status", "daily-report", "deadletter",
            "person-tests",
            "report-parts", "tube-ticks")}
    short = {v: k for k, v in address.items()}

    tube_table = app.Table("tube-state", default=None, partitions=n, key_type=bytes)
    person_table = app.Table("person-state", default=None, partitions=n, key_type=bytes)
    report_table = app.Table("report-state", default=None, partitions=n, key_type=bytes)
    tables = {"tube": tube_table, "person": person_table, "report": report_table}
    # Wall mode: a lapse due before this worker started was missed during downtime.
    catch_up_before = wall_now() - policy.allowed_lateness if clock == "wall" else None
    from faust.types import TP

    earliest: dict[Any, int] = {}  # partition -> its earliest offset, asked once

    def unread(topic: str, partition: int) -> bool:
        """Has this input partition records its stage has not handled yet?

        Judged by what the stage handled (not by Faust's read offset: Faust can read past
        records and never deliver them, see ``StageRunner.expected``).
        """
        tp = TP(address[topic], partition)
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            return True  # not fetched yet: assume there is something to read
        stage = "tube" if topic in ("sampling", "lab") else "person"
        expected = runners[stage].expected(partition, topic)
        return bool(highwater > (earliest.get(tp, 0) if expected is None else expected))

    def committed(topic: str, partition: int) -> int | None:
        """The group's committed offset (the next to read) of an input partition, if known."""
        value = app.consumer._committed_offset.get(TP(address[topic], partition))
        return None if value is None else int(value)

    runners = {
        "tube": StageRunner(TUBE, policy, _StrKeys(tube_table), upstream=0,
                            catch_up_before=catch_up_before, inputs=("sampling", "lab"),
                            unread=unread, committed=committed),
        "person": StageRunner(PERSON, policy, _StrKeys(person_table), upstream=n,
                              catch_up_before=catch_up_before,
                              inputs=("travel", "followup", "cohort", "action"),
                              unread=unread, committed=committed),
        "report": StageRunner(REPORT, policy, _StrKeys(report_table), upstream=2 * n,
                              own_clock=False),
    }
    telemetry = WorkerMetrics(policy)  # every closedloop_* metric (streams/metrics.py)
    for name in ("sampling", "lab", "tube-ticks", "action", "travel", "followup",
                 "person-tests", "report-parts"):
        telemetry.offset_gaps.labels(name)  # a zero series from the start, not from the first gap
    state: dict[str, Any] = {"ready": False}
    stage_topic = {"tube": address["sampling"], "person": address["travel"],
                   "report": address["report-parts"]}

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
        for alert in fx.alerts:
            await out["alerts"].send(key=alert.subject.encode(), value=_encode(alert))
            telemetry.alert_sent(alert.kind, arrived)
        for escalation in fx.escalations:
            await out["escalations"].send(key=escalation.subject.encode(),
                                          value=_encode(escalation))
        for person_id, message in fx.forwards:
            await out["person-tests"].send(key=person_id.encode(), value=orjson.dumps(message))
        for item in fx.contributions:
            await out["report-parts"].send(
                key=item["district"].encode(), value=orjson.dumps({"type": "part", **item}))
        for report in fx.reports:
            await out["daily-report"].send(key=report.district.encode(), value=_encode(report))
        if stage == "person" and fx.touched:
            runner = runners["person"]
            ctx = runner._context(runner._part(partition))
            for person_id in sorted(fx.touched):
                st = runner.table.get(person_id)
                value = None if st is None else _encode(
                    person_rules.person_status(ctx, person_id, st))
                await out["person-status"].send(key=person_id.encode(), value=value)
        if fx.mark is not None:
            mark = orjson.dumps({"type": "mark", "source": f"{stage}/{partition}",
                                 "at": fx.mark})
            targets = {"tube": ("person-tests", "report-parts"), "person": ("report-parts",)}
            for name in targets.get(stage, ()):
                for target in range(n):
                    await out[name].send(value=mark, partition=target)
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
        runner = runners[stage]
        value: bytes = event.value if event.value is not None else b""
        if name in INPUT_STAGE and INPUT_STAGE[name] != stage:
            fx, applied = _quiet_input(runner, name, value, message, policy)
            if fx.duplicate:
                telemetry.duplicates.labels(name).inc()  # only where the key's state is
            elif applied:
                telemetry.actions.labels(applied).inc()  # a tube's alert, handled here
        elif name in INPUT_STAGE:
            telemetry.consumed.labels(name).inc()
            decoded = decode_event(name, value, policy.cohorts, received_at=_receipt(message),
                                   max_clock_skew=policy.max_clock_skew)
            key = message.key.decode("utf-8", "replace") if message.key else ""
            if not isinstance(decoded, Rejection) and key != getattr(decoded, _KEY_FIELD[name]):
                decoded = Rejection("bad_envelope",
                                    f"the message key is not the event's {_KEY_FIELD[name]}")
            if isinstance(decoded, Rejection):
                await reject(decoded, value, message)
                fx = runner.on_skipped(message.partition, name, message.offset)
                await send_effects(stage, message.partition, fx, arrived)
                return
            at = int(decoded.occurred_at.timestamp())
            fx = runner.on_input(message.partition, key, decoded, at,
                                 f"{name}:{decoded.event_id}", topic=name,
                                 offset=message.offset)
            if fx.duplicate:
                telemetry.duplicates.labels(name).inc()
            elif fx.rejection is None and isinstance(decoded, Action) and key in runner.table:
                # counted where the subject's state is: a person's here, a tube's on the tube
                # stage (an action for a subject no stage knows changes nothing)
                telemetry.actions.labels(decoded.action).inc()
            if fx.rejection is not None:
                await reject(fx.rejection, value, message)
        elif value.startswith(b'{"type":"fill"'):
            request = orjson.loads(value)
            topic = address[request["topic"]]
            start = await expected_of(stage, topic, message.partition)
            if start < int(request["end"]):
                await fill(stage, topic, message.partition, start, int(request["end"]))
            return
        else:
            fx = _internal(runner, message, value)
        await send_effects(stage, message.partition, fx, arrived)

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
            tick = orjson.dumps({"type": "tick", "at": wall_now()})
            for name in ("tube-ticks", "person-tests"):
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


_KEY_FIELD = {"sampling": "tube_id", "lab": "tube_id", "travel": "person_id",
              "followup": "person_id", "cohort": "person_id", "action": "subject"}


def _receipt(message: Any) -> float | None:
    """The record's Kafka timestamp (epoch seconds): the receipt of the implausible-time rule
    (CONTRACT.md §1), never later than now (a producer's clock may set it). A record without
    one (-1, or none) leaves that bound unchecked."""
    stamp = getattr(message, "timestamp", None)
    if not isinstance(stamp, int | float) or stamp <= 0:
        return None
    return min(float(stamp), time.time())


def _internal(runner: StageRunner, message: Any, value: bytes) -> Effects:
    """A record of an internal topic: tick, clock mark, forward or contribution."""
    item = orjson.loads(value)
    kind = item.get("type")
    partition = message.partition
    if kind == "tick":
        after = {topic: int(ends[str(partition)]) for topic, ends in item.get("after", {}).items()
                 if str(partition) in ends}
        return runner.on_tick(partition, int(item["at"]), after)
    if kind == "mark":
        return runner.on_mark(partition, str(item["source"]), int(item["at"]))
    key = message.key.decode() if message.key else ""
    if kind == "part":
        return runner.on_counted(partition, key, item, int(item["at"]), message.topic,
                                 message.offset)
    at = int(item.get("at", item.get("reported", 0)))
    return runner.on_input(partition, key, item, at, None)


def _quiet_input(runner: StageRunner, name: str, value: bytes, message: Any,
                 policy: Policy) -> tuple[Effects, str | None]:
    """An input another stage owns (an action on the tube stage): applied if valid, else
    dropped silently (the owner dead-letters and counts it). It does not move the clock, but
    its offset counts for ``produce --until`` ticks, which wait for actions sent before them.
    Also returns the action applied to a key this stage holds, if any.
    """
    decoded = decode_event(name, value, policy.cohorts, received_at=_receipt(message),
                           max_clock_skew=policy.max_clock_skew)
    key = message.key.decode("utf-8", "replace") if message.key else ""
    if isinstance(decoded, Rejection) or key != getattr(decoded, _KEY_FIELD[name]):
        return runner.on_skipped(message.partition, name, message.offset), None
    at = int(decoded.occurred_at.timestamp())
    fx = runner.on_input(message.partition, key, decoded, at, f"{name}:{decoded.event_id}",
                         topic=name, offset=message.offset, clocked=False)
    held = isinstance(decoded, Action) and key in runner.table
    return fx, decoded.action if held and isinstance(decoded, Action) else None


# The stages that read each topic (an action reaches both keyed stages).
READERS: dict[str, tuple[str, ...]] = {
    "sampling": ("tube",), "lab": ("tube",), "tube-ticks": ("tube",),
    "action": ("tube", "person"), "travel": ("person",), "followup": ("person",),
    "cohort": ("person",), "person-tests": ("person",), "report-parts": ("report",),
}


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


class _StrKeys:
    """A Faust table seen through str keys (the table's keys are raw bytes)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str, default: Any = None) -> Any:
        value = self._table.get(key.encode())
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self._table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self._table[key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._table.get(key.encode()) is not None

    def keys(self) -> Any:
        return self._table.keys()


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


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--clock", choices=("wall", "event"), default="wall",
                        help="wall: ticks every second (live); event: event time only")
    parser.add_argument("--policy", metavar="FILE", help="TOML policy (default: the contract's)")
    parser.add_argument("--app-id", default=os.environ.get("CLOSEDLOOP_APP_ID", "closedloop"),
                        help="consumer group and table namespace (default closedloop)")
    parser.add_argument("--data-dir", default=os.environ.get("CLOSEDLOOP_DATA_DIR",
                                                             ".cache/worker"),
                        help="this worker's local data directory (one per worker)")
    parser.add_argument("--web-port", type=int,
                        default=int(os.environ.get("CLOSEDLOOP_WEB_PORT", "6066")),
                        help="HTTP port for /health, /ready and /metrics (default 6066)")
    parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")
    parser.add_argument("--partitions", type=int, help="partitions (default 12)")
    parser.add_argument("--loglevel", default="warning")


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"closedloop worker: {exc}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix, partitions=args.partitions)
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python())
    try:
        created = ensure_topics(admin, topic_specs(settings.prefix, settings.partitions,
                                                   settings.replication))
    finally:
        admin.close()
    if created:
        print(f"closedloop worker: created {len(created)} topics", file=sys.stderr)
    os.makedirs(args.data_dir, exist_ok=True)
    app = build_app(settings, policy, clock=args.clock, app_id=args.app_id,
                    data_dir=args.data_dir, web_port=args.web_port)
    from faust.worker import Worker

    worker = Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # Faust's spinner sets the root logger to DEBUG (slow)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_and_shutdown())
    worker.execute_from_commandline()
    return 0
