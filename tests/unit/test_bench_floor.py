"""The floor of the replay benchmarks does replay's per-line work and no rule."""

from __future__ import annotations

import io

import orjson

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines
from closedloop.streams.bench.floor import TARGET, bare_step_parses, ceiling, floor_pass
from closedloop.streams.bench.interleave import Interleaved
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


def test_replay_counts_a_keyed_step_per_stage_a_line_moves() -> None:
    # given a follow-up (its person only) and a sampling (its tube, then its person)
    sampling = orjson.dumps({"topic": "sampling", "value": {
        "event_id": "s1", "occurred_at": "2022-04-02T09:01:00+08:00", "person_id": "pp-00001",
        "tube_id": "tube-0001", "site_id": "site-01", "district": "d01", "pool_size": 1}})
    # when each is replayed alone, then replay counts one step and two
    assert replay_lines([_line("e1")], POLICY, received_at=2e9).keyed_steps == 1
    assert replay_lines([sampling], POLICY, received_at=2e9).keyed_steps == 2


def test_a_bare_step_is_priced_in_parses_of_the_sample() -> None:
    # a price, whatever the machine: positive and finite (never compared with a bound)
    sample = [_line(f"e{n}") for n in range(50)]
    assert 0 < bare_step_parses(POLICY, sample, keys=1_000, chunk=100) < float("inf")


def test_the_ceiling_adds_the_steps_the_floor_did_not_take_and_prices_the_rest() -> None:
    # given 1,000 lines parsed in 1 ms, through the floor in 10 ms (each applied, with its
    # keyed write), and replay's 3,000 steps, each costing a line's parse (1 us)
    c = ceiling(1_000, 0.001, 0.010, 3_000, 1_000, 1.0)
    # then a line costs the floor's 10 us and the two steps beyond its own: 12 us against
    # parse's 1 us
    assert c["steps_per_line"] == 3 and round(c["step_us"], 9) == 1
    assert round(c["ceiling_ratio"], 9) == round(1 / 12, 9)
    # and at the target a line may take 1 us / 8% = 12.5 us, leaving the rules 0.5 us
    assert TARGET == 0.08 and round(c["left_us"], 9) == 0.5


def test_interleaving_hands_the_pass_every_line_in_order_and_parses_each_once() -> None:
    # given seven lines, one of them not JSON, in chunks of three
    lines = [b'{"n": %d}' % n for n in range(6)] + [b"{not json"]
    seen: list[bytes] = []
    run = Interleaved(chunk=3)
    # when a pass that keeps what it reads is run through it
    result = run.run(lambda feed: seen.extend(feed) or len(seen), lines)
    # then the pass read every line, in order, the last partial chunk too, and returned
    assert seen == lines and result == 7
    # and both sides were timed (durations, never compared with a bound)
    assert run.parse_s > 0 and run.pass_s > 0 and run.ratio > 0
