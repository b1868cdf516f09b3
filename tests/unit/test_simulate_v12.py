"""``closedloop simulate --receipts`` and ``--inspections`` (contract v1.2): sources with habits
of their own, and supervision rounds, each behind an option that leaves other cities alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from closedloop.agents import supervision
from closedloop.schemas.decode import Rejection, decode_line
from closedloop.schemas.events import Followup, Inspection, Lab, Sampling
from closedloop.schemas.policy import default_policy
from closedloop.streams.cli import main
from closedloop.streams.sim.feed import CityConfig, Noise, simulate

POLICY = default_policy()
BASE = CityConfig(seed=9, people=3000, days=3)
RECEIPTS = CityConfig(seed=9, people=3000, days=3, receipts=True)
SHANGHAI = timezone(timedelta(hours=8))  # the simulated city's local time


def _without_receipt(line: bytes) -> bytes:
    try:
        envelope = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # a not-JSON line carries no receipt
    if isinstance(envelope, dict):
        envelope.pop("received_at", None)
        return orjson.dumps(envelope)
    return line


def _local(instant: datetime) -> datetime:
    return instant.astimezone(SHANGHAI)


@pytest.fixture(scope="module")
def with_receipts() -> tuple[list[bytes], Counter[str]]:
    summary: Counter[str] = Counter()
    return list(simulate(RECEIPTS, summary)), summary


class TestReceipts:
    def test_the_city_is_the_same_city_with_receipts_and_habits(
            self, with_receipts: tuple[list[bytes], Counter[str]]) -> None:
        # given the same config without and with receipts
        plain = list(simulate(BASE))
        lines, _ = with_receipts
        # then the same lines, once the receipts are taken off (habits only move them)
        assert Counter(map(_without_receipt, lines)) == Counter(plain)
        assert lines != plain

    def test_every_envelope_says_when_it_arrived_in_file_order(
            self, with_receipts: tuple[list[bytes], Counter[str]]) -> None:
        lines, summary = with_receipts
        last = None
        for line in lines:
            read = decode_line(line, POLICY.cohorts, with_receipt=True)
            if isinstance(read, Rejection) or isinstance(read[1], Rejection):
                continue  # a bad line: its receipt is not read (nor, if not JSON, written)
            _, event, receipt = read
            assert receipt is not None, line
            assert last is None or receipt >= last  # the file is in arrival order
            last = receipt
            assert receipt >= event.occurred_at  # an entry never precedes its event
        assert summary["malformed"] > 0

    def test_each_source_with_a_habit_is_late_as_it_says(
            self, with_receipts: tuple[list[bytes], Counter[str]]) -> None:
        lines, summary = with_receipts
        lags: dict[str, list[timedelta]] = defaultdict(list)
        stalled = quiet = batched = 0
        for line in lines:
            read = decode_line(line, POLICY.cohorts, with_receipt=True)
            if isinstance(read, Rejection) or isinstance(read[1], Rejection):
                continue
            _, event, receipt = read
            assert receipt is not None
            lag = receipt - event.occurred_at
            entered = _local(receipt)
            if isinstance(event, Sampling) and event.site_id == "site:xuhui-01":
                # the noon site: entered at the first noon after the swab, or later (a swab
                # whose upload comes after its result arrives later still)
                swabbed = _local(event.occurred_at)
                noon = swabbed.replace(hour=12, minute=0, second=0)
                assert entered >= (noon if swabbed <= noon else noon + timedelta(days=1))
                batched += entered.hour == 12 and entered.minute <= 10
                lags["noon_site"].append(lag)
            elif isinstance(event, Lab) and event.lab_id == "lab:02":
                happened = _local(event.occurred_at)
                if happened.date().isoformat() == "2022-09-07" and 12 <= happened.hour < 16:
                    # what happened during the stall is entered when it ends
                    assert entered >= happened.replace(hour=16, minute=0, second=0)
                    lags["stalled_lab"].append(lag)
                stalled += entered.replace(hour=16, minute=0, second=0) <= entered <= \
                    entered.replace(hour=16, minute=10, second=0) and entered.day == 7
                # nothing of the stalled lab arrives during its stall
                quiet += entered.date().isoformat() == "2022-09-07" and 12 <= entered.hour < 16
            elif isinstance(event, Followup) and event.worker_id == "gw:xuhui-01":
                assert entered.hour >= 22 or entered.date() > _local(event.occurred_at).date()
                lags["night_worker"].append(lag)
        assert quiet == 0
        assert stalled >= summary["receipts:stalled_lab"] > 0
        # (the file also holds re-sent lines, and a bad line may name the noon site)
        assert 0 < summary["receipts:noon_site"] <= len(lags["noon_site"])
        assert batched > 0.9 * len(lags["noon_site"])
        assert 0 < summary["receipts:night_worker"] <= len(lags["night_worker"])
        # and each habit makes late entries by the policy's entry_within
        within = {"noon_site": "sampling", "stalled_lab": "lab", "night_worker": "followup"}
        for habit, topic in within.items():
            late = [lag for lag in lags[habit]
                    if lag > timedelta(seconds=POLICY.entry_within[topic])]
            assert late, habit

    def test_the_cli_option_writes_the_same_city(self, tmp_path: Path,
                                                 with_receipts: tuple[list[bytes], Any]) -> None:
        target = tmp_path / "city.jsonl"
        assert main(["simulate", "--seed", "9", "--people", "3000", "--days", "3",
                     "--receipts", "-o", str(target)]) == 0
        assert target.read_bytes() == b"".join(line + b"\n" for line in with_receipts[0])


INSPECTED = CityConfig(seed=4, people=1200, days=4, inspections=True, noise=Noise().scaled(0))


@pytest.fixture(scope="module")
def inspected() -> tuple[list[Inspection], Counter[str]]:
    summary: Counter[str] = Counter()
    records = []
    for line in simulate(INSPECTED, summary):
        read = decode_line(line, POLICY.cohorts, with_receipt=True)
        assert not isinstance(read, Rejection) and not isinstance(read[1], Rejection), line
        if isinstance(read[1], Inspection):
            records.append(read[1])
    return records, summary


class TestInspections:
    def test_every_record_is_valid_and_counted(
            self, inspected: tuple[list[Inspection], Counter[str]]) -> None:
        records, summary = inspected
        assert len(records) == summary["events:inspection"] > 0
        kinds = Counter(r.record for r in records)
        assert kinds["finding"] == summary["city:findings"]
        assert {r.unit_kind for r in records} == {"site", "venue", "company", "school"}
        assert {r.severity for r in records if r.record == "finding"} == {
            "minor", "major", "critical"}

    def test_what_became_of_each_finding_adds_up(
            self, inspected: tuple[list[Inspection], Counter[str]]) -> None:
        records, summary = inspected
        assert summary["city:findings"] == sum(summary[f"city:{outcome}"] for outcome in (
            "rectified_on_time", "rectified_late", "never_rectified", "open_at_end"))
        for outcome in ("rectified_on_time", "rectified_late", "never_rectified",
                        "rechecks_passed", "rechecks_failed", "repeat_findings"):
            assert summary[f"city:{outcome}"] > 0, outcome
        findings = {r.finding_id: r for r in records if r.record == "finding"}
        for record in records:
            # every rectification and recheck follows its own finding, of the same unit
            finding = findings[record.finding_id]
            assert (record.unit_id, record.district) == (finding.unit_id, finding.district)
            assert record.occurred_at >= finding.occurred_at

    def test_a_failed_recheck_is_rectified_and_checked_again(
            self, inspected: tuple[list[Inspection], Counter[str]]) -> None:
        records, _ = inspected
        by_finding: dict[str, list[str]] = defaultdict(list)
        for record in sorted(records, key=lambda r: r.occurred_at):
            by_finding[record.finding_id].append(
                record.record + (f":{record.result}" if record.result else ""))
        failed = [steps for steps in by_finding.values() if "recheck:fail" in steps]
        assert failed
        for steps in failed:
            after = steps[steps.index("recheck:fail") + 1:]
            assert after in ([], ["rectified"], ["rectified", "recheck:pass"]), steps

    def test_a_city_without_inspections_has_none_and_keeps_its_bytes(self) -> None:
        plain = CityConfig(seed=4, people=1200, days=4, noise=Noise().scaled(0))
        assert not any(b'"inspection"' in line for line in simulate(plain))


def test_the_supervision_rules_find_what_the_city_made(
        inspected: tuple[list[Inspection], Counter[str]]) -> None:
    # given the city's inspection records through the pure rules, one state per unit
    records, summary = inspected
    units: dict[str, supervision.UnitState] = defaultdict(supervision.UnitState)
    for record in records:
        supervision.on_inspection(POLICY, units[record.unit_id], record,
                                  int(record.occurred_at.timestamp()))
    # when the clock reaches the city's end
    end = int(INSPECTED.start.timestamp()) + INSPECTED.days * 86400
    lapses = Counter(lapse.kind for unit, st in units.items()
                     for lapse in supervision.fire(POLICY, st, unit, end).lapses)
    # then each failed recheck and each finding made again is found, and the findings never
    # rectified or rectified late lapse (those whose window outlasts the city excepted)
    assert lapses["recheck_failed"] == summary["city:rechecks_failed"]
    assert lapses["repeat_offender"] == summary["city:repeat_findings"]
    assert summary["city:rectified_late"] <= lapses["rectification_overdue"] <= (
        summary["city:rectified_late"] + summary["city:never_rectified"])
    assert lapses["rectification_overdue"] > summary["city:rectified_late"]  # the showcase's
    assert sum(supervision.counted(POLICY, st)["orphan_records"] for st in units.values()) == 0


def test_bench_replay_measures_the_city_with_receipts(
        capsys: pytest.CaptureFixture[str]) -> None:
    # the yardstick: the same city with received_at on every line, through replay
    assert main(["bench", "replay", "--people", "300", "--days", "2", "--repeat", "1",
                 "--receipts"]) == 0
    captured = capsys.readouterr()
    assert "city with receipts" in captured.err
    lines = list(simulate(CityConfig(seed=1, people=300, days=2, receipts=True)))
    events = next(line for line in captured.out.splitlines() if line.startswith("events"))
    assert int(events.split()[-1].replace(",", "")) == len(lines)
