"""Testing rounds on the worker's multi-partition path equal replay's (CONTRACT.md §4 v1.1).

Every person partition holds every round (broadcast by the tube stage), makes its share of
each report from its own persons, raises ``round_missed`` for them, and the report stage sums
the shares of all partitions into one ``round-report``. Whatever the interleaving, the round
reports, alerts and escalations equal replay's of the same file, by bytes.

The city (``helpers.round_city``): 200 persons on the roster over four districts (on all
four partitions), a round over three districts and a city-wide one closing at the same
instant, samplings in the rounds and catch-ups after, a ``left`` record, two movers, persons
sampled who are not on the roster, and a round that arrives after its close (on the bus too:
every person partition's clock passed it, and marked it downstream, before the round reaches
it). Ticks mid-way (each at least the allowed lateness behind the last record sent) make
progress reports fire mid-stream on the bus.
"""

from __future__ import annotations

import io
from collections import Counter
from functools import cache
from typing import Any

import msgspec
import orjson
import pytest
from helpers import T0, at, epoch, population, round_, round_city, to_line

from closedloop.agents.calendar import Calendar
from closedloop.agents.requirements import Context
from closedloop.agents.round_sum import KEY_PREFIX, on_part
from closedloop.agents.rounds import report
from closedloop.agents.shared import Shared
from closedloop.agents.state import PersonState, ReportState, RoundPart, Sampled
from closedloop.schemas.decode import decode_event
from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.engine.bus import BusOutputs, PartitionedBus
from closedloop.streams.engine.stage_runner import (
    DEDUP_PREFIX,
    DedupChunk,
    PartitionMeta,
    StageRunner,
    meta_key,
)
from closedloop.streams.engine.topology import PERSON, partition_of

ORDERS = ("fifo", "reverse", "random-1", "random-2")
OPENS = T0  # 09:00 on 2022-09-06
CLOSES = at(T0, hours=3)  # 12:00: the city's two rounds close then
UNTIL = at(CLOSES, days=2)  # every final report (close + 24 h) and escalation is past
PERSONS = 200
# (instant to tick, the time from which on the next records are sent): each tick is sent
# after every record before it, and at least the allowed lateness (5 min) behind them
TICKS = ((at(T0, hours=1, minutes=5), at(T0, hours=1, minutes=10)),
         (at(T0, hours=1, minutes=45), at(T0, hours=1, minutes=55)),  # r-late: after its close
         (at(T0, hours=2, minutes=20), at(T0, hours=2, minutes=30)),
         (at(CLOSES, minutes=20), at(CLOSES, minutes=30)))


@cache
def _chunks() -> tuple[tuple[bytes, ...], ...]:
    """The records in time order, cut where :data:`TICKS` says."""
    ordered = sorted(round_city(PERSONS), key=lambda item: epoch(item[0]))
    chunks: list[list[bytes]] = [[] for _ in range(len(TICKS) + 1)]
    for instant, event in ordered:
        index = sum(1 for _, start in TICKS if epoch(instant) >= epoch(start))
        chunks[index].append(to_line(event))
    return tuple(tuple(chunk) for chunk in chunks)


@cache
def _replayed() -> tuple[frozenset[bytes], frozenset[bytes], tuple[bytes, ...]]:
    alerts, escalations, rounds = io.BytesIO(), io.BytesIO(), io.BytesIO()
    lines = [line for chunk in _chunks() for line in chunk]
    replay_lines(lines, default_policy(), until=epoch(UNTIL), alerts_out=alerts,
                 escalations_out=escalations, round_reports_out=rounds)
    return (frozenset(alerts.getvalue().splitlines()),
            frozenset(escalations.getvalue().splitlines()),
            tuple(sorted(rounds.getvalue().splitlines())))


def _ran(order: str, partitions: int = 4) -> PartitionedBus:
    bus = PartitionedBus(default_policy(), partitions=partitions, order=order)
    chunks = _chunks()
    for chunk, (tick, _) in zip(chunks, TICKS, strict=False):
        bus.produce(chunk)
        bus.tick(epoch(tick))
    bus.produce(chunks[-1])
    bus.tick(epoch(UNTIL))
    bus.run()
    return bus


def _bus(order: str, partitions: int = 4) -> BusOutputs:
    return _ran(order, partitions).out


def _encoded(items: list[Any]) -> list[bytes]:
    return [msgspec.json.encode(item) for item in items]


class TestTheCity:
    def test_persons_are_on_every_partition(self) -> None:
        assert {partition_of(f"person-{n:04d}", 4) for n in range(PERSONS)} == {0, 1, 2, 3}

    def test_replay_makes_every_report_with_misses_catch_ups_and_persons_off_the_roster(
        self,
    ) -> None:
        alerts, escalations, lines = _replayed()
        reports = [msgspec.json.decode(line) for line in lines]
        stages = Counter((r["round_id"], r["stage"]) for r in reports)
        assert stages == {("r-abc", "progress"): 2, ("r-abc", "close"): 1,
                          ("r-abc", "final"): 1, ("r-city", "progress"): 1,
                          ("r-city", "close"): 1, ("r-city", "final"): 1,
                          ("r-late", "progress"): 1, ("r-late", "close"): 1,
                          ("r-late", "final"): 1}
        rows = [row for r in reports for row in r["rows"]]
        assert any(row["not_on_roster"] for row in rows)
        assert any(row["caught_up"] and row["catchup_median_hours"] for row in rows)
        missed = [msgspec.json.decode(line) for line in alerts if b'"round_missed"' in line]
        # one alert per person closing at 12:00 listing both rounds, and the late round's
        assert any(a["details"]["rounds"] == ["r-abc", "r-city"] for a in missed)
        assert any(a["details"]["rounds"] == ["r-late"] for a in missed)
        assert {partition_of(a["subject"], 4) for a in missed} == {0, 1, 2, 3}
        assert any(b'"round_missed"' in line for line in escalations)


class TestRoundsOnTheBusEqualReplay:
    @pytest.mark.parametrize("order", ORDERS)
    def test_round_reports_equal_replay_by_bytes(self, order: str) -> None:
        sent = _encoded(_bus(order).round_reports)
        assert len(sent) == len(set(sent))  # each report once
        assert tuple(sorted(sent)) == _replayed()[2]

    @pytest.mark.parametrize("order", ORDERS)
    def test_alerts_and_escalations_equal_replay(self, order: str) -> None:
        out = _bus(order)
        sent = _encoded(out.alerts)
        assert len(sent) == len(set(sent))
        assert set(sent) == _replayed()[0]
        assert set(_encoded(out.escalations)) == _replayed()[1]

    def test_no_share_is_left_waiting_on_the_report_stage(self) -> None:
        store = _ran("random-4").stores["report"]
        rows = {key: st for data in store.parts.values() for key, st in data.items()
                if key.startswith(KEY_PREFIX)}
        assert sorted(rows) == [KEY_PREFIX + r for r in ("r-abc", "r-city", "r-late")]
        assert all(isinstance(st, ReportState) and st.rparts is None and st.made_through
                   for st in rows.values())

    def test_one_partition_equals_replay_too(self) -> None:
        out = _bus("random-3", partitions=1)
        assert tuple(sorted(_encoded(out.round_reports))) == _replayed()[2]
        assert set(_encoded(out.alerts)) == _replayed()[0]


class TestSummingShares:
    """The report stage's sum of one report's shares (agents/round_sum.py)."""

    @staticmethod
    def _share(source: int, counts: dict[str, list[int]],
               delays: dict[str, list[int]] | None = None) -> RoundPart:
        return RoundPart("r1", 2, epoch(CLOSES), counts, delays or {}, source=source, of=2)

    def test_the_report_waits_for_every_partition_and_sums_them(self) -> None:
        pol = default_policy()
        ctx = Context(pol, Calendar(pol.zone, pol.daily_cutoff), epoch(CLOSES))
        st = ReportState()
        on_part(ctx, st, self._share(1, {"district-a": [3, 1, 0]}, {"district-a": [3600]}))
        on_part(ctx, st, self._share(1, {"district-a": [3, 1, 0]}, {"district-a": [3600]}))
        assert ctx.out.round_reports == []  # a redelivered share is the same share
        on_part(ctx, st, self._share(0, {"district-a": [2, 2, 1], "district-b": [0, 0, 0]},
                                     {"district-a": [7200, 1800]}))
        [made] = ctx.out.round_reports
        assert made == report(ctx.cal, [self._share(0, {"district-a": [5, 3, 1]},
                                                    {"district-a": [1800, 3600, 7200]})])
        row = made.rows[0]
        assert (row.in_scope, row.sampled, row.missed, row.caught_up, row.not_on_roster,
                row.catchup_median_hours) == (5, 3, 2, 3, 1, 1.0)
        assert [r.district for r in made.rows] == ["district-a"]  # empty rows left out
        # a share redelivered after the report was made adds nothing
        on_part(ctx, st, self._share(0, {"district-a": [2, 2, 1]}))
        assert len(ctx.out.round_reports) == 1 and not st.rparts

    def test_a_report_an_older_changelog_lists_as_made_is_not_made_again(self) -> None:
        pol = default_policy()
        ctx = Context(pol, Calendar(pol.zone, pol.daily_cutoff), epoch(CLOSES))
        st = msgspec.json.decode(
            msgspec.json.encode({"rdone": [f"2:{epoch(CLOSES)}", f"0:{epoch(CLOSES) - 60}"]}),
            type=ReportState)
        on_part(ctx, st, self._share(0, {"district-a": [2, 2, 1]}))
        on_part(ctx, st, self._share(1, {"district-a": [2, 2, 1]}))
        assert ctx.out.round_reports == [] and st.rdone is None
        assert st.made_through == {2: epoch(CLOSES), 0: epoch(CLOSES) - 60}

    def test_the_state_of_a_long_round_does_not_grow_with_its_reports(self) -> None:
        pol = default_policy()
        ctx = Context(pol, Calendar(pol.zone, pol.daily_cutoff), epoch(CLOSES))
        st = ReportState()
        for minute in range(1, 500):
            on_part(ctx, st, RoundPart("r1", 0, epoch(CLOSES) + 60 * minute,
                                       {"district-a": [1, 1, 0]}))
        assert len(ctx.out.round_reports) == 499
        assert len(msgspec.json.encode(st)) < 100


class TestATakeover:
    """A worker taking a person partition over rebuilds the rounds' progress counts from the
    persons in the (changelogged) table: the partition's saved copy may miss the latest."""

    def test_progress_counts_are_recounted_from_the_persons_on_assignment(self) -> None:
        def event(envelope: dict[str, Any]) -> Any:
            decoded = decode_event(envelope["topic"], orjson.dumps(envelope["value"]))
            assert not hasattr(decoded, "reason"), decoded
            return decoded

        class Changelogged(dict[str, bytes]):
            """A table whose rows are bytes, as a Faust table's: a value read is a copy."""

            def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
                raw = super().get(key)
                if raw is None:
                    return default
                kind = (DedupChunk if key.startswith(DEDUP_PREFIX) else PartitionMeta
                        if key.startswith("\x00") else PersonState)
                return msgspec.json.decode(raw, type=kind)

            def __setitem__(self, key: str, value: Any) -> None:
                super().__setitem__(key, msgspec.json.encode(value))

        def worker(table: Changelogged) -> StageRunner[Any]:
            return StageRunner(PERSON, default_policy(), table, upstream=0,
                               inputs=("population",), mark_every=10**9, shared=True)

        table = Changelogged()
        first = worker(table)
        before = at(T0, days=-1)
        for offset, person in enumerate(("person-0001", "person-0002")):
            first.on_input(0, person, event(population(person, before)), epoch(before),
                           f"population:{offset}", topic="population", offset=offset)
        first.on_shared(0, event(round_("r1", before, OPENS, CLOSES)))
        first.flush()  # the end of a batch: the clock state is written
        # a sampling in the round reaches the partition; its saved clock state is not rewritten
        swab = epoch(at(OPENS, minutes=30))
        first.on_input(0, "person-0001", Sampled(swab, "tube-1", 1, "site-1", None, None,
                                                 "district-a"), swab, None)
        saved = table.get(meta_key(0))
        assert isinstance(saved, PartitionMeta) and isinstance(saved.shared, Shared)
        # the copy missed the sampling (the first instant's counts whole, then the steps: the
        # 11:00 instant, where nothing changed, is not kept)
        assert saved.shared.rounds["r1"].pending == {
            epoch(at(OPENS, hours=1)): {"district-a": [2, 0, 0]}}
        second = worker(table)  # another worker, same table
        second.assign(0)
        fx = second.on_tick(0, epoch(at(OPENS, hours=1)), {})
        assert fx.round_parts == [RoundPart("r1", 0, epoch(at(OPENS, hours=1)),
                                            {"district-a": [2, 1, 0]}, {}, source=0, of=1)]
