"""The floor of the replay benchmarks does replay's per-line work and no rule."""

from __future__ import annotations

import io

import orjson

from closedloop.schemas.policy import default_policy
from closedloop.streams.bench.floor import floor_pass
from closedloop.streams.cli.replay import replay_lines
from closedloop.streams.sim.feed import CityConfig, Noise, simulate

POLICY = default_policy()


def _line(event_id: str, person: str = "pp-00001") -> bytes:
    return orjson.dumps({"topic": "followup", "value": {
        "event_id": event_id, "occurred_at": "2022-04-02T09:00:00+08:00",
        "person_id": person, "worker_id": "w-1", "kind": "visit"}})


def test_floor_counts_what_it_applied_repeated_and_refused() -> None:
    # given a valid line, its repeat, a line that is not JSON, one that names a raw
    # identifier, and a blank line
    lines = [_line("e1"), _line("e1"), b'{"topic": ', _line("e2", person="110101199003077777"),
             b"  ", _line("e3", person="pp-00002")]
    # when the floor runs over them
    counts = floor_pass(lines, POLICY)
    # then it applied the two distinct valid events, skipped the repeat and the blank line,
    # and refused the others for the reasons replay gives
    assert counts == {"applied": 2, "duplicates": 1, "blank": 1, "rejected:not_json": 1,
                      "rejected:raw_identifier": 1}


def test_floor_decodes_and_deduplicates_a_noisy_city_as_replay_does() -> None:
    # given a city with ten times the usual noise (repeats, late and malformed lines)
    lines = list(simulate(CityConfig(seed=5, people=300, days=2, noise=Noise().scaled(10))))
    # when the floor and replay both read it, received at the same instant
    floor = floor_pass(lines, POLICY, received_at=2e9)
    stats = replay_lines(lines, POLICY, alerts_out=io.BytesIO(), received_at=2e9).stats
    # then they ignored the same repeats, and every line the floor refused replay refused
    # for the same reason (replay's rules may refuse more, the floor has none)
    assert floor["duplicates"] == stats["duplicates_ignored"] > 0
    refused = {k: n for k, n in floor.items() if k.startswith("rejected:")}
    assert refused and all(stats[reason] >= n for reason, n in refused.items())
    applied = sum(n for k, n in stats.items() if k.startswith("applied:"))
    assert floor["applied"] >= applied > 0
