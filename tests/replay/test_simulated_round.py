"""``closedloop simulate --round``: a roster and a city-wide testing round whose replay has
misses, catch-ups and people sampled off the roster, counted alike by the city's summary and
by the engine; and a city simulated without it has no roster and no round."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from closedloop.schemas.instants import parse_instant
from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.cli import main
from closedloop.streams.sim.feed import CityConfig, Noise, simulate
from closedloop.streams.sim.rounds import ROUND_ID

UNTIL = "2022-09-10T00:00:00+08:00"  # four days from 2022-09-06: the final report is in
RECEIVED = "2022-09-11T00:00:00+08:00"


def _replay(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts, rounds = io.BytesIO(), io.BytesIO()
    replay_lines(lines, default_policy(), until=parse_instant(UNTIL), alerts_out=alerts,
                 round_reports_out=rounds, received_at=parse_instant(RECEIVED))
    return ([orjson.loads(x) for x in alerts.getvalue().splitlines()],
            [orjson.loads(x) for x in rounds.getvalue().splitlines()])


def _totals(report: dict[str, Any]) -> Counter[str]:
    total: Counter[str] = Counter()
    for row in report["rows"]:
        total.update({k: v for k, v in row.items() if k not in ("district",
                                                                "catchup_median_hours")})
    return total


def _stage(reports: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    found = [r for r in reports if r["round_id"] == ROUND_ID and r["stage"] == stage]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("noise", [1.0, 0.0], ids=["noisy", "clean"])
def test_the_round_has_misses_catch_ups_and_people_off_the_roster(noise: float) -> None:
    summary: Counter[str] = Counter()
    config = CityConfig(seed=5, people=1200, days=4, round=True, noise=Noise().scaled(noise))
    alerts, reports = _replay(simulate(config, summary))
    close, final = _stage(reports, "close"), _stage(reports, "final")
    assert close["as_of"] == "2022-09-07T18:00:00+08:00"
    assert final["as_of"] == "2022-09-08T18:00:00+08:00"
    total = _totals(final)
    assert total["missed"] > 0 and total["caught_up"] > 0 and total["not_on_roster"] > 0
    assert 0 < total["caught_up"] < total["missed"] < total["in_scope"] * 0.1
    assert _totals(close)["caught_up"] == 0
    assert {row["district"] for row in final["rows"]} == set(config.districts)
    # the city's own count of its round is what the engine found; with transport noise, a
    # sampling that arrives after the close fired (late, or its tube's result came first)
    # no longer counts in the round
    counted = ("in_scope", "sampled", "missed", "caught_up", "not_on_roster")
    city = {k: summary[f"city:round_{k}"] for k in counted}
    if noise == 0:
        assert {k: total[k] for k in counted} == city
    else:
        assert total["in_scope"] == city["in_scope"]
        assert 0 <= total["missed"] - city["missed"] <= (summary["noise:late"]
                                                         + 10 * summary["noise:result_first"])
    assert summary["city:round_in_scope"] == (summary["city:round_roster"]
                                              - summary["city:round_left"])
    assert summary["city:round_moved"] > 0 and summary["city:round_visitors"] >= 2
    missed = [a for a in alerts if a["kind"] == "round_missed"]
    assert len(missed) == total["missed"]
    assert all(a["details"]["rounds"] == [ROUND_ID] and a["details"]["grid"].startswith(
        f"grid:{a['district']}-") for a in missed)
    # hourly progress while open, 06:00-18:00
    assert [r["as_of"][11:16] for r in reports if r["stage"] == "progress"] == [
        f"{h:02d}:00" for h in range(7, 18)]


def test_a_city_without_round_has_no_roster_and_no_round(tmp_path: Path) -> None:
    out = tmp_path / "city.jsonl"
    assert main(["simulate", "--people", "300", "--days", "2", "--noise-scale", "0",
                 "-o", str(out)]) == 0
    topics = Counter(json.loads(line)["topic"] for line in out.read_text().splitlines()
    )
    assert topics["sampling"] > 0
    assert topics["population"] == topics["round"] == 0
    with_round = tmp_path / "round.jsonl"
    assert main(["simulate", "--people", "300", "--days", "2", "--noise-scale", "0",
                 "--round", "-o", str(with_round)]) == 0
    topics = Counter(json.loads(line)["topic"] for line in with_round.read_text().splitlines()
                     )
    assert topics["round"] == 1 and topics["population"] > 300



class TestBenchRound:
    def test_bench_round_replays_its_city_to_a_final_report_that_adds_up(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # when the round benchmark runs on a small city
        assert main(["bench", "round", "--persons", "400", "--seed", "2"]) == 0
        captured = capsys.readouterr()
        # then it said where it was, phase by phase, on stderr...
        phases = [line.strip() for line in captured.err.splitlines()]
        assert phases[1].startswith("writing the city (400 persons")
        assert re.match(r"[\d,]+ lines in \d+ s; replay of the file", phases[2])
        assert re.match(r"replay [\d,]+ lines/s, parse-only [\d,]+; the floor", phases[3])
        assert len(phases) == 4
        # ...and its final report counts every roster person once, a round_missed per miss
        final = re.search(r"in scope ([\d,]+), missed ([\d,]+), caught up ([\d,]+), not on "
                          r"roster ([\d,]+); round_missed alerts ([\d,]+)", captured.out)
        assert final is not None
        in_scope, missed, caught_up, off_roster, alerts = (
            int(n.replace(",", "")) for n in final.groups())
        assert in_scope == 400 and 0 < caught_up < missed == alerts < 40 and off_roster == 2
        # and it measured the floor beside the replay (a ratio each; timings are not asserted)
        ratios = dict(re.findall(r"ratio (\w+)/parse +([\d.]+)%", captured.out))
        assert set(ratios) == {"replay", "floor", "ceiling"}
        assert all(float(r) > 0 for r in ratios.values())
