"""The worker's multi-partition path, without a broker, produces exactly what replay produces.

The in-memory bus (``streams/engine/bus.py``) runs the worker's stage runners on four
partitions of every topic, routes what they produce as the worker does (forwards keyed by
person, contributions by district, clock marks to every downstream partition, ticks to every
stage partition) and delivers records in an interleaving chosen by ``order``. Whatever the
interleaving, the alerts, escalations and daily reports must equal replay's of the same file
(``clock --until`` against ``replay --until``), by id and bytes.
"""

from __future__ import annotations

import io
from collections import Counter
from functools import cache

import msgspec
import pytest
from helpers import epoch

from closedloop.schemas.events import Lab
from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.engine.bus import BusOutputs, PartitionedBus
from closedloop.streams.engine.topology import TUBE
from closedloop.streams.sim.feed import CityConfig, simulate

UNTIL = "2022-09-09T12:00:00+08:00"  # past the city's last event: both runs end there
ORDERS = ("fifo", "reverse", "random-1", "random-2")


@cache
def _city() -> tuple[bytes, ...]:
    return tuple(simulate(CityConfig(seed=11, people=400, days=3)))


@cache
def _replayed() -> tuple[frozenset[bytes], frozenset[bytes], tuple[bytes, ...]]:
    alerts, escalations, reports = io.BytesIO(), io.BytesIO(), io.BytesIO()
    replay_lines(_city(), default_policy(), until=epoch(UNTIL), alerts_out=alerts,
                 escalations_out=escalations, reports_out=reports)
    return (frozenset(alerts.getvalue().splitlines()),
            frozenset(escalations.getvalue().splitlines()),
            tuple(sorted(reports.getvalue().splitlines())))


def _bus(order: str, partitions: int = 4) -> BusOutputs:
    bus = PartitionedBus(default_policy(), partitions=partitions, order=order)
    bus.produce(_city())
    bus.tick(epoch(UNTIL))
    return bus.run()


def _encoded(items: list[msgspec.Struct]) -> list[bytes]:
    return [msgspec.json.encode(item) for item in items]


class TestPartitionedBusEqualsReplay:
    def test_the_city_exercises_most_loops(self) -> None:
        alerts, escalations, reports = _replayed()
        kinds = Counter(msgspec.json.decode(line)["kind"] for line in alerts)
        assert len(kinds) >= 6 and escalations and reports

    @pytest.mark.parametrize("order", ORDERS)
    def test_alerts_equal_replay_by_id_and_bytes(self, order: str) -> None:
        sent = _encoded(_bus(order).alerts)
        # at-least-once is the broker's business: the bus itself never sends one twice
        assert len(sent) == len(set(sent))
        assert set(sent) == _replayed()[0]

    @pytest.mark.parametrize("order", ORDERS)
    def test_escalations_equal_replay(self, order: str) -> None:
        assert set(_encoded(_bus(order).escalations)) == _replayed()[1]

    @pytest.mark.parametrize("order", ORDERS)
    def test_daily_reports_equal_replay(self, order: str) -> None:
        assert tuple(sorted(_encoded(_bus(order).reports))) == _replayed()[2]

    def test_one_partition_equals_replay_too(self) -> None:
        out = _bus("fifo", partitions=1)
        assert set(_encoded(out.alerts)) == _replayed()[0]
        assert tuple(sorted(_encoded(out.reports))) == _replayed()[2]

    def test_every_line_replay_rejects_is_dead_lettered_once(self) -> None:
        # given the city's malformed lines; replay rejects each once
        stats = replay_lines(_city(), default_policy(), until=epoch(UNTIL)).stats
        rejected = sum(n for key, n in stats.items() if key.startswith("rejected:"))
        assert rejected > 0
        # then the bus dead-letters as many (a line that is no envelope at produce time)
        assert len(_bus("fifo").dead_letters) == rejected


class TestAProducerStillWriting:
    def test_a_topic_still_empty_does_not_let_the_clock_run_past_its_facts(self) -> None:
        # given the worker reads every sampling before any other record has been written
        # (a producer still writing; a topic that is empty now may yet deliver older facts)
        lines = _city()
        samplings = [line for line in lines if line.startswith(b'{"topic":"sampling"')]
        others = [line for line in lines if not line.startswith(b'{"topic":"sampling"')]
        bus = PartitionedBus(default_policy(), partitions=4, order="fifo")
        bus.produce(samplings)
        early = bus.run()
        # then no lab deadline fired on the samplings' clock alone
        assert not [a for a in early.alerts if a.kind == "lab_sla_breached"]
        # and once the rest arrives and the clock is moved on, the outputs are replay's
        bus.produce(others)
        bus.tick(epoch(UNTIL))
        out = bus.run()
        assert set(_encoded(out.alerts)) == _replayed()[0]
        assert tuple(sorted(_encoded(out.reports))) == _replayed()[2]


class TestARecordTheEngineFailsOn:
    """A bug, or an input no rule foresaw, must neither stop the run nor vanish."""

    @pytest.fixture
    def failing_lab(self, monkeypatch: pytest.MonkeyPatch) -> str:
        from closedloop.agents import tubes

        _replayed()  # the expected outputs are made by the real rules, before the patch
        original = tubes.on_lab
        # the first tube with a lab record makes the rule raise
        victim = next(msgspec.json.decode(line)["value"]["tube_id"] for line in _city()
                      if line.startswith(b'{"topic":"lab"') and b'"status":"reported"' in line)

        def on_lab(ctx: object, st: object, tube_id: str, event: object) -> None:
            if tube_id == victim:
                raise ZeroDivisionError("a bug")
            original(ctx, st, tube_id, event)  # type: ignore[arg-type]

        # the tube stage looks its rule up by the input's type, in a table built at import
        monkeypatch.setitem(TUBE.appliers, Lab, on_lab)
        return victim

    def test_the_worker_path_dead_letters_it_and_goes_on(self, failing_lab: str) -> None:
        out = _bus("random-1")
        failed = [letter for letter in out.dead_letters if letter.reason == "internal_error"]
        assert failed and all(failing_lab in letter.original for letter in failed)
        assert all("ZeroDivisionError" in letter.message and letter.offset is not None
                   for letter in failed)
        # the other tubes' lab alerts are all still raised
        others = {a.alert_id for a in out.alerts if a.tube_id not in (None, failing_lab)}
        replayed = {msgspec.json.decode(line)["alert_id"] for line in _replayed()[0]
                    if msgspec.json.decode(line)["tube_id"] not in (None, failing_lab)}
        assert others == replayed

    def test_replay_dead_letters_it_and_goes_on(self, failing_lab: str) -> None:
        letters = io.BytesIO()
        result = replay_lines(_city(), default_policy(), until=epoch(UNTIL),
                              deadletter_out=letters)
        failed = [msgspec.json.decode(line) for line in letters.getvalue().splitlines()
                  if b'"internal_error"' in line]
        assert failed and all(failing_lab in letter["original"] for letter in failed)
        assert result.stats["rejected:internal_error"] == len(failed)
        assert sum(result.alerts_by_kind.values()) > 0


class TestSharedFactsReachEveryPersonPartition:
    """``area`` records (key county) land on one partition; every person partition needs them.

    The tube stage broadcasts each to every person partition ahead of its next clock mark,
    so an entry is judged against the levels as of its instant whichever partitions hold
    the county and the person, and whichever order the bus delivers in.
    """

    @staticmethod
    def _lines() -> list[bytes]:
        from helpers import area, at, checkpoint, sampling, to_line

        t0 = "2022-09-06T09:00:00+08:00"
        events = [area(f"C-{n}", at(t0, days=-1), "high" if n % 2 else "medium")
                  for n in range(6)]
        # people entering from each county; one area record arrives after the first entries
        # it governs (within the lateness: the clock has not passed them yet); a county
        # turns low between two entries; a sampling moves the clock on
        entries = [checkpoint(f"traveller-{n:02d}", at(t0, minutes=n), at(t0, hours=-3),
                              visited=[f"C-{n % 6}", "C-late"]) for n in range(12)]
        events += [*entries[:4], area("C-late", at(t0, minutes=-30), "medium"), *entries[4:],
                   area("C-0", at(t0, minutes=6, seconds=30), "low"),
                   sampling("someone-0001", "tb-1", at(t0, hours=1))]
        return [to_line(event) for event in events]

    @pytest.mark.parametrize("order", ORDERS)
    def test_entries_are_judged_as_replay_judges_them(self, order: str) -> None:
        until = epoch("2022-09-07T12:00:00+08:00")
        alerts = io.BytesIO()
        replay_lines(self._lines(), default_policy(), until=until, alerts_out=alerts)
        replayed = set(alerts.getvalue().splitlines())
        unlocated = [msgspec.json.decode(line) for line in replayed if b'"unlocated"' in line]
        # every entry pushed (C-late is medium), at the level of its first county if higher
        assert len(unlocated) == 12
        assert {a["details"]["source"] for a in unlocated} == {"checkpoint"}
        assert sorted(a["details"]["risk"] for a in unlocated).count("high") == 6
        bus = PartitionedBus(default_policy(), partitions=4, order=order)
        bus.produce(self._lines())
        bus.tick(until)
        assert set(_encoded(bus.run().alerts)) == replayed
