"""Testing rounds and the roster comparison (CONTRACT.md §4 v1.1), through replay, at the edges.

The round of most tests: opens 09:00, closes 12:00 local on 2022-09-06, district-a; the
catch-up window (24 h) ends 12:00 on 09-07. Rows are compared as tuples
(in_scope, sampled, missed, caught_up, not_on_roster, catchup_median_hours).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    T0,
    alerts_of,
    at,
    cohort,
    epoch,
    policy,
    population,
    round_,
    run_escalations,
    run_rounds,
    sampling,
    to_line,
)

from closedloop.agents import rounds
from closedloop.agents.rounds import median_hours
from closedloop.schemas.policy import policy_from_mapping
from closedloop.streams.cli import main
from closedloop.streams.engine import embedded

OPENS = T0  # 2022-09-06T09:00:00+08:00
CLOSES = at(T0, hours=3)  # 12:00
FINAL = at(CLOSES, days=1)  # 12:00 on 09-07
BEFORE = at(T0, days=-1)  # roster records made the day before
CALLED = at(T0, hours=-1)  # the round is called at 08:00
END = at(FINAL, days=1)  # far enough for every report

Row = tuple[int, int, int, int, int, float | None]


def _rows(report: dict[str, Any]) -> dict[str, Row]:
    return {
        row["district"]: (row["in_scope"], row["sampled"], row["missed"], row["caught_up"],
                          row["not_on_roster"], row["catchup_median_hours"])
        for row in report["rows"]
    }


def _report(reports: list[dict[str, Any]], stage: str, round_id: str = "r1"
            ) -> dict[str, Any]:
    found = [r for r in reports if r["round_id"] == round_id and r["stage"] == stage]
    assert len(found) == 1, found
    return found[0]


def _missed(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str | None, list[str], Any]]:
    """(subject, due_at, district, rounds, grid) of every round_missed, by subject (the
    output is by (raised_at, alert_id), and alert ids are hashes)."""
    return sorted((a["subject"], a["due_at"], a["district"], a["details"]["rounds"],
                   a["details"]["grid"]) for a in alerts_of(alerts, "round_missed"))


def _round(**kw: Any) -> dict[str, Any]:
    return round_("r1", CALLED, OPENS, CLOSES, **kw)


class TestScopeAndClose:
    def test_close_counts_the_roster_and_raises_one_alert_per_missed_person(self) -> None:
        # given three residents of district-a, one sampled in the round
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE, grid="grid-7"),
            population("person-cccc", BEFORE, status="floating"),
            _round(),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1)),
        ]
        # when the clock passes the close
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        # then the close report and two alerts due at the close, with grid (or null)
        assert _rows(_report(reports, "close")) == {"district-a": (3, 1, 2, 0, 0, None)}
        assert _report(reports, "close")["as_of"] == CLOSES
        assert _missed(alerts) == [
            ("person-bbbb", CLOSES, "district-a", ["r1"], "grid-7"),
            ("person-cccc", CLOSES, "district-a", ["r1"], None),
        ]
        assert all(a["raised_at"] == CLOSES and a["person_id"] == a["subject"]
                   and a["tube_id"] is None for a in alerts_of(alerts, "round_missed"))

    def test_nothing_closes_one_second_before_closes_at(self) -> None:
        events = [population("person-aaaa", BEFORE), _round()]
        alerts, reports, _ = run_rounds(events, until=at(CLOSES, seconds=-1))
        assert _missed(alerts) == []
        assert [r["stage"] for r in reports] == ["progress", "progress"]

    def test_samplings_exactly_at_opens_and_closes_count_one_second_outside_do_not(
        self,
    ) -> None:
        events = [
            *(population(f"person-{c * 4}", BEFORE) for c in "abcd"),
            _round(),
            sampling("person-aaaa", "tube-a1", OPENS),
            sampling("person-bbbb", "tube-b1", CLOSES),
            sampling("person-cccc", "tube-c1", at(OPENS, seconds=-1)),
            sampling("person-dddd", "tube-d1", at(CLOSES, seconds=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        assert _rows(_report(reports, "close")) == {"district-a": (4, 2, 2, 0, 0, None)}
        assert [m[0] for m in _missed(alerts)] == ["person-cccc", "person-dddd"]

    def test_a_sampling_up_to_the_lateness_late_counts_a_later_one_does_not(self) -> None:
        # given a sampling at 12:06 (clock 12:01: the close fired), then two late ones
        # at 11:59: one arrives before the close fired, one after
        events = [
            *(population(f"person-{c * 4}", BEFORE) for c in "abc"),
            _round(),
            sampling("person-aaaa", "tube-a1", at(CLOSES, minutes=4)),  # clock 11:59
            sampling("person-bbbb", "tube-b1", at(CLOSES, minutes=-1)),  # in time
            sampling("person-aaaa", "tube-a2", at(CLOSES, minutes=6)),  # clock 12:01
            sampling("person-cccc", "tube-c1", at(CLOSES, minutes=-1)),  # too late
        ]
        alerts, reports, _ = run_rounds(events)
        assert _rows(_report(reports, "close")) == {"district-a": (3, 1, 2, 0, 0, None)}
        assert [m[0] for m in _missed(alerts)] == ["person-aaaa", "person-cccc"]

    def test_every_district_star_and_districts_outside_the_round(self) -> None:
        events = [
            population("person-aaaa", BEFORE, district="district-a"),
            population("person-bbbb", BEFORE, district="district-b"),
            population("person-cccc", BEFORE, district="district-c"),
            round_("r-star", CALLED, OPENS, CLOSES, ["*"]),
            round_("r-ab", CALLED, OPENS, CLOSES, ["district-b", "district-a"]),
            sampling("person-bbbb", "tube-b1", at(T0, hours=1), district="district-b"),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        assert _rows(_report(reports, "close", "r-star")) == {
            "district-a": (1, 0, 1, 0, 0, None),
            "district-b": (1, 1, 0, 0, 0, None),
            "district-c": (1, 0, 1, 0, 0, None),
        }
        assert _rows(_report(reports, "close", "r-ab")) == {
            "district-a": (1, 0, 1, 0, 0, None),
            "district-b": (1, 1, 0, 0, 0, None),
        }
        # rounds closing at one instant: one alert per person listing the rounds missed
        assert _missed(alerts) == [
            ("person-aaaa", CLOSES, "district-a", ["r-ab", "r-star"], None),
            ("person-cccc", CLOSES, "district-c", ["r-star"], None),
        ]

    def test_two_rounds_closing_at_the_same_instant_give_one_alert_listing_both(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            round_("r-z", CALLED, OPENS, CLOSES),
            round_("r-a", CALLED, at(OPENS, hours=1), CLOSES),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        assert _missed(alerts) == [("person-aaaa", CLOSES, "district-a", ["r-a", "r-z"], None)]
        # and the close reports in round_id order
        assert [(r["round_id"], r["stage"]) for r in reports if r["stage"] == "close"] == [
            ("r-a", "close"), ("r-z", "close")]


class TestRoster:
    def test_roster_changes_before_the_close_count_after_it_do_not(self) -> None:
        # given A moves to district-b before the close, B after it; C joins before the
        # close, D after it; E leaves before the close, F after it
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE),
            population("person-eeee", BEFORE),
            population("person-ffff", BEFORE),
            _round(),
            population("person-aaaa", at(CLOSES, minutes=-10), district="district-b"),
            population("person-cccc", at(CLOSES, minutes=-10)),
            population("person-eeee", at(CLOSES, minutes=-10), status="left"),
            population("person-bbbb", at(CLOSES, seconds=1), district="district-b"),
            population("person-dddd", at(CLOSES, seconds=1)),
            population("person-ffff", at(CLOSES, seconds=1), status="left"),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        # then in scope: B, C, F (as at the close)
        assert _rows(_report(reports, "close")) == {"district-a": (3, 0, 3, 0, 0, None)}
        assert [m[0] for m in _missed(alerts)] == ["person-bbbb", "person-cccc", "person-ffff"]

    def test_a_person_moving_district_is_counted_in_their_district_at_the_close(self) -> None:
        # given A lives in district-b, sampled at 10:00, moves to district-a at 11:00
        events = [
            population("person-aaaa", BEFORE, district="district-b"),
            round_("r1", CALLED, OPENS, CLOSES, ["district-a", "district-b"]),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1), district="district-b"),
            population("person-aaaa", at(T0, hours=2), district="district-a", grid="grid-1"),
        ]
        _, reports, _ = run_rounds(events, until=CLOSES)
        # then the 10:00 progress has them in district-b, the close in district-a, sampled
        progress = [r for r in reports if r["stage"] == "progress"]
        assert [(r["as_of"], _rows(r)) for r in progress] == [
            (at(T0, hours=1), {"district-b": (1, 1, 0, 0, 0, None)}),
            (at(T0, hours=2), {"district-a": (1, 1, 0, 0, 0, None)}),
        ]
        assert _rows(_report(reports, "close")) == {"district-a": (1, 1, 0, 0, 0, None)}

    def test_a_left_person_sampled_in_the_round_is_not_on_the_roster(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            population("person-aaaa", at(BEFORE, hours=1), status="left"),
            _round(),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        assert _rows(_report(reports, "close")) == {"district-a": (0, 0, 0, 0, 1, None)}
        assert _missed(alerts) == []

    def test_records_at_one_instant_the_larger_event_id_wins_in_any_arrival_order(
        self,
    ) -> None:
        for order in (1, -1):
            records = [population("person-aaaa", BEFORE, status="left", event_id="pop-b"),
                       population("person-aaaa", BEFORE, event_id="pop-a")][::order]
            alerts, reports, _ = run_rounds([*records, _round()], until=CLOSES)
            assert _rows(_report(reports, "close")) == {}
            assert _missed(alerts) == []

    def test_a_record_arriving_out_of_order_takes_its_place_in_time(self) -> None:
        # given the move (09:30) arrives after an older record (08:00) that says district-a
        events = [
            population("person-aaaa", at(T0, minutes=30), district="district-b"),
            population("person-aaaa", BEFORE, district="district-a"),
            _round(),
        ]
        _, reports, _ = run_rounds(events, until=CLOSES)
        assert _rows(_report(reports, "close")) == {}

    def test_not_on_roster_is_counted_in_the_sites_district_if_a_round_district(
        self,
    ) -> None:
        # given X (no roster) sampled in district-b, Y (no roster) sampled only in
        # district-c (not a round district), Z (no roster) sampled in c, then in b
        events = [
            round_("r1", CALLED, OPENS, CLOSES, ["district-a", "district-b"]),
            sampling("person-xxxx", "tube-x1", at(T0, hours=1), district="district-b"),
            sampling("person-yyyy", "tube-y1", at(T0, hours=1), district="district-c"),
            sampling("person-zzzz", "tube-z1", at(T0, hours=1), district="district-c"),
            sampling("person-zzzz", "tube-z2", at(T0, hours=2), district="district-b"),
            sampling("person-zzzz", "tube-z3", at(T0, hours=2), district="district-a"),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        # then X and Z counted once each, in the district of their first such site
        assert _rows(_report(reports, "close")) == {"district-b": (0, 0, 0, 0, 2, None)}
        assert _missed(alerts) == []


class TestCohortRounds:
    def test_active_members_whose_cohort_district_is_in_the_round_roster_or_not(
        self,
    ) -> None:
        # A: member in district-a, on the roster (district-b): in scope, in district-a
        # B: member, not on the roster, sampled: in scope and not on the roster
        # C: member who left the cohort before the close; D: member in district-c
        # E: on the roster in district-a, not a member: not in scope
        events = [
            population("person-aaaa", BEFORE, district="district-b", grid="grid-9"),
            population("person-eeee", BEFORE),
            cohort("person-aaaa", BEFORE, "cold_chain"),
            cohort("person-bbbb", BEFORE, "cold_chain"),
            cohort("person-cccc", BEFORE, "cold_chain"),
            cohort("person-cccc", at(T0, hours=1), "cold_chain", active=False),
            cohort("person-dddd", BEFORE, "cold_chain", district="district-c"),
            round_("r1", CALLED, OPENS, CLOSES, cohort="cold_chain"),
            sampling("person-bbbb", "tube-b1", at(T0, hours=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        assert _rows(_report(reports, "close")) == {"district-a": (2, 1, 1, 0, 1, None)}
        assert _missed(alerts) == [("person-aaaa", CLOSES, "district-a", ["r1"], "grid-9")]


class TestReplacementAndLateRounds:
    def test_a_round_replaced_before_its_close_takes_the_later_record(self) -> None:
        # given r1 called for 09:00-12:00, then re-called for 09:00-14:00, then a record
        # with an earlier occurred_at (ignored)
        events = [
            population("person-aaaa", BEFORE),
            _round(),
            round_("r1", at(CALLED, minutes=30), OPENS, at(CLOSES, hours=2)),
            round_("r1", at(CALLED, minutes=-30), OPENS, at(CLOSES, hours=1)),
            sampling("person-aaaa", "tube-a1", at(CLOSES, hours=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=at(CLOSES, hours=2))
        close = _report(reports, "close")
        assert close["as_of"] == at(CLOSES, hours=2)
        assert _rows(close) == {"district-a": (1, 1, 0, 0, 0, None)}
        assert _missed(alerts) == []

    def test_a_replacement_after_the_close_is_ignored(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            _round(),
            sampling("person-bbbb", "tube-b1", at(CLOSES, minutes=10)),  # the close fires
            round_("r1", at(CLOSES, minutes=11), OPENS, at(CLOSES, hours=5)),
            sampling("person-aaaa", "tube-a1", at(CLOSES, hours=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=END)
        assert [(r["stage"], r["as_of"]) for r in reports] == [
            ("progress", at(T0, hours=1)), ("progress", at(T0, hours=2)),
            ("close", CLOSES), ("final", FINAL)]
        assert _missed(alerts) == [("person-aaaa", CLOSES, "district-a", ["r1"], None)]
        assert _rows(_report(reports, "final")) == {"district-a": (1, 0, 1, 1, 0, 1.0)}

    def test_a_round_arriving_after_its_close_is_evaluated_at_once(self) -> None:
        # given the round record arrives when the clock is already at 13:00
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1, minutes=30)),
            sampling("person-cccc", "tube-c1", at(CLOSES, hours=1, minutes=5)),
            _round(),
        ]
        alerts, reports, _ = run_rounds(events)
        # then its overdue progress and close reports, in order, and the alert
        assert [(r["stage"], r["as_of"], _rows(r)) for r in reports] == [
            ("progress", at(T0, hours=1), {"district-a": (2, 0, 2, 0, 0, None)}),
            ("progress", at(T0, hours=2), {"district-a": (2, 1, 1, 0, 0, None)}),
            ("close", CLOSES, {"district-a": (2, 1, 1, 0, 0, None)}),
        ]
        assert _missed(alerts) == [("person-bbbb", CLOSES, "district-a", ["r1"], None)]


class TestProgress:
    def test_progress_every_hour_after_opens_while_open_as_of_its_instant(self) -> None:
        # given A on the roster, B joins at 10:30, A sampled at 10:00:00, B at 11:00:01
        events = [
            population("person-aaaa", BEFORE),
            _round(),
            sampling("person-aaaa", "tube-a1", at(T0, hours=1)),
            population("person-bbbb", at(T0, hours=1, minutes=30)),
            sampling("person-bbbb", "tube-b1", at(T0, hours=2, seconds=1)),
        ]
        _, reports, _ = run_rounds(events, until=CLOSES)
        # then progress at 10:00 and 11:00 (not at 09:00 nor 12:00), then the close
        assert [(r["stage"], r["as_of"], _rows(r)) for r in reports] == [
            ("progress", at(T0, hours=1), {"district-a": (1, 1, 0, 0, 0, None)}),
            ("progress", at(T0, hours=2), {"district-a": (2, 1, 1, 0, 0, None)}),
            ("close", CLOSES, {"district-a": (2, 2, 0, 0, 0, None)}),
        ]

    def test_an_empty_round_reports_no_rows(self) -> None:
        _, reports, _ = run_rounds([_round()], until=CLOSES)
        assert [(r["stage"], r["rows"]) for r in reports] == [
            ("progress", []), ("progress", []), ("close", [])]

    def test_reports_of_rounds_at_one_instant_are_ordered_by_round_id(self) -> None:
        events = [
            round_("r-b", CALLED, OPENS, at(OPENS, hours=2)),
            round_("r-a", CALLED, OPENS, at(OPENS, hours=1)),
        ]
        _, reports, _ = run_rounds(events, until=at(OPENS, hours=2))
        assert [(r["as_of"], r["round_id"], r["stage"]) for r in reports] == [
            (at(OPENS, hours=1), "r-a", "close"),
            (at(OPENS, hours=1), "r-b", "progress"),
            (at(OPENS, hours=2), "r-b", "close"),
        ]


    def test_a_late_rounds_overdue_reports_take_their_place_by_as_of(self) -> None:
        # given round r9 (06:00-08:00) reported through its close, then round r3
        # (05:00-07:30) arriving when the clock is at 20:00, in the same flush
        day = at(T0, days=1, hours=-9)  # 2022-09-07T00:00
        events = [
            population("person-aaaa", BEFORE),
            round_("r9", CALLED, at(day, hours=6), at(day, hours=8)),
            sampling("person-zzzz", "tube-z1", at(day, hours=20)),
            round_("r3", at(day, hours=20), at(day, hours=5), at(day, hours=7, minutes=30)),
        ]
        _, reports, _ = run_rounds(events, until=at(day, hours=21))
        # then the reports come by as_of, then round_id, then stage (§6), not as raised
        assert [(r["as_of"], r["round_id"], r["stage"]) for r in reports] == [
            (at(day, hours=6), "r3", "progress"),
            (at(day, hours=7), "r3", "progress"),
            (at(day, hours=7), "r9", "progress"),
            (at(day, hours=7, minutes=30), "r3", "close"),
            (at(day, hours=8), "r9", "close"),
        ]


    @staticmethod
    def _late_long_round() -> list[dict[str, Any]]:
        """40 persons in 8 districts and a three-day round arriving after it: 71 hourly
        progress reports of 8 rows each at once."""
        events = [population(f"person-{n:04d}", BEFORE, district=f"district-{n % 8}")
                  for n in range(40)]
        events.append(round_("r-long", at(OPENS, days=3), OPENS, at(OPENS, days=3),
                             districts=["*"]))
        return events

    @staticmethod
    def _spilled(events: list[dict[str, Any]]) -> tuple[list[list[Any]], list[Any]]:
        """The round reports the engine handed over while reading ``events`` (each part as
        handed), and those left to the final drain."""
        driver = embedded.EmbeddedDriver(policy())
        handed: list[list[Any]] = []
        driver.spill = lambda held: (handed.append(list(held)), held.clear())[0]
        for number, event in enumerate(events, start=1):
            driver.pipe_line(to_line(event), embedded.Origin(line=number))
        return handed, driver.drain().round_reports

    def test_the_engine_hands_held_round_reports_over_every_spill_rows(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given the engine hands round reports over once 20 rows are held
        monkeypatch.setattr(embedded, "SPILL_ROWS", 20)
        # when the late round arrives
        handed, left = self._spilled(self._late_long_round())
        # then it handed them over three reports (24 rows) at a time, the rest left to the
        # drain, each once and in order
        assert [len(part) for part in handed] == [3] * 23 and len(left) == 2
        made = [(r.as_of, r.stage) for part in handed for r in part] + [
            (r.as_of, r.stage) for r in left]
        assert made == [(at(OPENS, hours=h), "progress") for h in range(1, 72)]

    def test_a_report_a_minute_keeps_only_the_instants_where_a_count_changes(self) -> None:
        # given a 40-day round with a report a minute (57,599 progress instants) and two
        # samplings in it, 5 days apart
        pol = policy_from_mapping({"rounds": {"round_progress_every": "60s"}})
        events = [population("person-aaaa", BEFORE), population("person-bbbb", BEFORE),
                  round_("r-minute", CALLED, OPENS, at(OPENS, days=40)),
                  sampling("person-aaaa", "tube-a1", at(OPENS, days=15, seconds=30)),
                  sampling("person-bbbb", "tube-b1", at(OPENS, days=20, seconds=30))]
        driver = embedded.EmbeddedDriver(pol)
        for number, event in enumerate(events, start=1):
            driver.pipe_line(to_line(event), embedded.Origin(line=number))
        reports = driver.drain().round_reports
        # when the clock has reached day 20 (less the allowed lateness)
        assert reports[-1].as_of == at(OPENS, days=20, minutes=-5)
        assert len(reports) == 20 * 1440 - 5
        # then the round keeps two instants' counts: the next report's, whole, and the
        # change the last sampling makes a minute after it; not one per instant to come
        pending = driver.shared.rounds["r-minute"].pending
        assert pending == {epoch(at(OPENS, days=20, minutes=-4)): {"district-a": [2, 1, 0]},
                           epoch(at(OPENS, days=20, minutes=1)): {"district-a": [0, 1, 0]}}

    def test_reports_without_rows_are_handed_over_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given the engine hands round reports over once 20 rows are held, and a late round
        # with nobody in scope: 71 progress reports with no row at all
        monkeypatch.setattr(embedded, "SPILL_ROWS", 20)
        handed, left = self._spilled([round_("r-empty", at(OPENS, days=3), OPENS,
                                             at(OPENS, days=3), districts=["district-nobody"])])
        # then each counts as a row: handed over 20 at a time, never all held
        assert [len(part) for part in handed] == [20] * 3 and len(left) == 11
        assert all(not r.rows for part in handed for r in part)

    def test_reports_handed_over_in_parts_are_the_same_file(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        whole = run_rounds(self._late_long_round())[2]
        monkeypatch.setattr(embedded, "SPILL_ROWS", 20)
        assert run_rounds(self._late_long_round())[2] == whole
        assert len(whole.splitlines()) == 71


class TestCatchUp:
    def test_catch_up_exactly_at_the_window_end_counts_one_second_later_does_not(
        self,
    ) -> None:
        events = [
            *(population(f"person-{c * 4}", BEFORE) for c in "abc"),
            _round(),
            sampling("person-aaaa", "tube-a1", FINAL),
            sampling("person-bbbb", "tube-b1", at(FINAL, seconds=1)),
            sampling("person-cccc", "tube-c1", at(CLOSES, seconds=1)),
        ]
        alerts, reports, _ = run_rounds(events, until=END)
        # A caught up after 24 h, C after 1 s: median 12.0 h
        assert _rows(_report(reports, "final")) == {"district-a": (3, 0, 3, 2, 0, 12.0)}
        assert _report(reports, "final")["as_of"] == FINAL
        assert len(_missed(alerts)) == 3

    def test_final_fires_at_the_window_end_not_a_second_before(self) -> None:
        events = [population("person-aaaa", BEFORE), _round()]
        _, reports, _ = run_rounds(events, until=at(FINAL, seconds=-1))
        assert [r["stage"] for r in reports] == ["progress", "progress", "close"]
        _, reports, _ = run_rounds(events, until=FINAL)
        assert [r["stage"] for r in reports][-1] == "final"

    def test_the_median_is_rounded_half_up_to_a_tenth_of_an_hour(self) -> None:
        # given one catch-up 15 min after the close (0.25 h), in district-b 1 h and 2 h
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE, district="district-b"),
            population("person-cccc", BEFORE, district="district-b"),
            population("person-dddd", BEFORE, district="district-b"),
            round_("r1", CALLED, OPENS, CLOSES, ["district-a", "district-b"]),
            sampling("person-aaaa", "tube-a1", at(CLOSES, minutes=15)),
            sampling("person-bbbb", "tube-b1", at(CLOSES, hours=1)),
            sampling("person-bbbb", "tube-b2", at(CLOSES, hours=5)),  # not the first
            sampling("person-cccc", "tube-c1", at(CLOSES, hours=2)),
        ]
        _, reports, _ = run_rounds(events, until=END)
        assert _rows(_report(reports, "final")) == {
            "district-a": (1, 0, 1, 1, 0, 0.3),
            "district-b": (3, 0, 3, 2, 0, 1.5),
        }
        assert (median_hours([]), median_hours([3780]), median_hours([900, 1000, 1200])) == (
            None, 1.1, 0.3)

    def test_a_catch_up_satisfies_the_escalation_a_miss_escalates(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE),
            _round(),
            sampling("person-aaaa", "tube-a1", at(CLOSES, hours=1)),
        ]
        alerts, escalations, _ = run_escalations(events, until=at(CLOSES, hours=3))
        assert [m[0] for m in _missed(alerts)] == ["person-aaaa", "person-bbbb"]
        assert [(e["subject"], e["details"]["alert_kind"], e["details"]["level"])
                for e in escalations] == [("person-bbbb", "round_missed", 2)]


class TestDeterminism:
    def test_same_input_same_bytes(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            population("person-bbbb", BEFORE, district="district-b"),
            round_("r1", CALLED, OPENS, CLOSES, ["*"]),
            round_("r2", CALLED, OPENS, CLOSES, ["district-b"]),
            sampling("person-cccc", "tube-c1", at(T0, hours=1)),
            sampling("person-aaaa", "tube-a1", at(CLOSES, hours=2)),
        ]
        first = run_rounds(events, until=END)
        second = run_rounds(events, until=END)
        assert first[2] == second[2] and first[0] == second[0]
        assert [r["stage"] for r in first[1]].count("final") == 2


class TestRosterKept:
    def test_a_roster_entry_outlives_state_retention_other_facts_do_not(self) -> None:
        # given A on the roster 20 days before the round (state_retention is 8 days), and
        # B who was on it and left; neither heard of since
        events = [
            population("person-aaaa", at(BEFORE, days=-19), grid="grid-3"),
            population("person-bbbb", at(BEFORE, days=-19)),
            population("person-bbbb", at(BEFORE, days=-18), status="left"),
            sampling("person-cccc", "tube-c1", at(BEFORE, days=-18)),  # moves the clock
            _round(),
        ]
        alerts, reports, _ = run_rounds(events, until=CLOSES)
        # then A is still in scope, with their grid; B is not
        assert _rows(_report(reports, "close")) == {"district-a": (1, 0, 1, 0, 0, None)}
        assert _missed(alerts) == [("person-aaaa", CLOSES, "district-a", ["r1"], "grid-3")]


class TestCommandLine:
    def test_round_reports_option_writes_them_in_the_order_raised(self, tmp_path: Path) -> None:
        events = [population("person-aaaa", BEFORE), _round()]
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps(e) + "\n" for e in events))
        out = tmp_path / "rounds.jsonl"
        status = main(["replay", str(source), "--until", FINAL, "--quiet",
                       "--alerts", str(tmp_path / "a.jsonl"), "--round-reports", str(out)])
        assert status == 0
        assert out.read_bytes() == run_rounds(events, until=FINAL)[2]
        assert [json.loads(line)["stage"] for line in out.read_text().splitlines()] == [
            "progress", "progress", "close", "final"]


def _random_city(seed: int) -> list[dict[str, Any]]:
    """Roster records (moves, leaves, ties), cohort changes, samplings (some late, some off
    the roster) and rounds (one replaced, one cohort, one arriving late) in a shuffled-ish
    order: what the kept progress counts must survive."""
    rng = random.Random(seed)
    persons = [f"person-{i:04d}" for i in range(40)]
    districts = ["district-a", "district-b", "district-c"]
    events: list[tuple[int, dict[str, Any]]] = []

    def when(lo: float, hi: float) -> str:
        return at(T0, minutes=rng.randint(int(lo * 60), int(hi * 60)))

    for person in persons[:30]:
        for _ in range(rng.randint(1, 3)):
            status = rng.choice(["resident", "floating", "resident", "left"])
            events.append((rng.randint(0, 400), population(
                person, when(-3, 5), district=rng.choice(districts), status=status,
                grid=rng.choice([None, "grid-1"]))))
    for person in persons[20:35]:
        for _ in range(rng.randint(1, 2)):
            events.append((rng.randint(0, 400), cohort(
                person, when(-3, 5), "courier", active=rng.random() < 0.7,
                district=rng.choice(districts))))
    for number in range(60):
        events.append((rng.randint(0, 400), sampling(
            rng.choice(persons), f"tube-{seed}-{number}", when(-1, 6),
            district=rng.choice(districts))))
    events.append((rng.randint(0, 100), round_("r-all", when(-2, -1), T0, at(T0, hours=4),
                                               ["*"])))
    events.append((rng.randint(0, 100), round_("r-ab", when(-2, -1), at(T0, minutes=30),
                                               at(T0, hours=5), ["district-a", "district-b"])))
    events.append((rng.randint(100, 300), round_("r-ab", when(-1, 0), at(T0, minutes=10),
                                                 at(T0, hours=3), ["district-b"])))
    events.append((rng.randint(0, 400), round_("r-co", when(-2, -1), T0, at(T0, hours=6),
                                               ["district-a", "district-c"], cohort="courier")))
    events.sort(key=lambda item: item[0])
    return [event for _, event in events]


class TestKeptCountsEqualARescan:
    @pytest.mark.parametrize("seed", range(12))
    def test_progress_from_kept_counts_equals_a_rescan(
        self, seed: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given a random city and its rounds; when replayed with the counts kept per instant
        # and then rescanning every person at every report
        city = _random_city(seed)
        kept = run_rounds(city, until=END)
        monkeypatch.setattr(rounds, "INCREMENTAL", False)
        rescanned = run_rounds(city, until=END)
        # then the same reports and alerts, byte for byte, and something was counted
        assert kept[2] == rescanned[2]
        assert kept[0] == rescanned[0]
        assert sum(row["in_scope"] for r in kept[1] if r["stage"] == "progress"
                   for row in r["rows"]) > 0


class TestPolicyAndSchedule:
    def test_the_policy_sets_the_progress_interval_and_the_catch_up_window(self) -> None:
        pol = policy_from_mapping(
            {"rounds": {"round_progress_every": "45m", "catchup_within": "2h"}})
        events = [population("person-aaaa", BEFORE), _round(),
                  sampling("person-aaaa", "tube-a1", at(CLOSES, hours=2))]
        _, reports, _ = run_rounds(events, until=END, pol=pol)
        assert [(r["stage"], r["as_of"]) for r in reports] == [
            ("progress", at(T0, minutes=45)), ("progress", at(T0, minutes=90)),
            ("progress", at(T0, minutes=135)), ("close", CLOSES),
            ("final", at(CLOSES, hours=2))]
        assert _rows(reports[-1]) == {"district-a": (1, 0, 1, 1, 0, 2.0)}

    def test_a_replacement_moving_opens_continues_after_the_last_progress_report(
        self,
    ) -> None:
        # given progress at 10:00 made, then the round re-called to open at 09:30
        events = [
            population("person-aaaa", BEFORE),
            _round(),
            population("person-bbbb", at(T0, hours=1, minutes=6)),  # clock 10:01
            round_("r1", at(T0, hours=1, minutes=1), at(T0, minutes=30), CLOSES),
        ]
        _, reports, _ = run_rounds(events, until=CLOSES)
        # then the next progress is 10:30, 11:30 on the new schedule
        assert [(r["stage"], r["as_of"]) for r in reports] == [
            ("progress", at(T0, hours=1)), ("progress", at(T0, hours=1, minutes=30)),
            ("progress", at(T0, hours=2, minutes=30)), ("close", CLOSES)]
        assert _rows(reports[-1]) == {"district-a": (2, 0, 2, 0, 0, None)}

    def test_a_replacement_moving_the_close_before_the_clock_closes_at_once(self) -> None:
        events = [
            population("person-aaaa", BEFORE),
            round_("r1", CALLED, OPENS, at(CLOSES, hours=3)),
            sampling("person-bbbb", "tube-b1", at(CLOSES, minutes=30)),  # clock 12:25
            round_("r1", at(CLOSES, minutes=20), OPENS, CLOSES),
        ]
        alerts, reports, _ = run_rounds(events)
        # (the 12:00 progress of the first schedule was made before the replacement came)
        assert [(r["stage"], r["as_of"]) for r in reports] == [
            ("progress", at(T0, hours=1)), ("progress", at(T0, hours=2)),
            ("progress", CLOSES), ("close", CLOSES)]
        assert _rows(reports[-1]) == {"district-a": (1, 0, 1, 0, 0, None)}
        assert _missed(alerts) == [("person-aaaa", CLOSES, "district-a", ["r1"], None)]
