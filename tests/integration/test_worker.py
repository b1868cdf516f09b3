"""The worker on the real broker produces exactly what ``closedloop replay`` produces.

Given a simulated city (with its noise: late and duplicated events, results before
samplings, malformed lines, identity misuse), ``produce`` + ``clock --until`` +
``worker --clock event`` must publish the same alerts (same ids, same content) and the same
daily reports as replay of the same file, whatever happens to the workers. ``--until`` lies
past the city's last event, so both runs end at the same clock.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from helpers import epoch, round_city, to_line
from worker_harness import (
    Deployment,
    assigned_inputs,
    distinct,
    replay,
    simulate,
    split_file,
)

from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import replay_lines

UNTIL = "2022-09-10T12:00:00+08:00"


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    workdir = tmp_path_factory.mktemp("city")
    path = workdir / "city.jsonl"
    simulate(path, people=600, days=3, seed=5)
    alerts, reports = replay(path, UNTIL, workdir)
    assert len({a["kind"] for a in alerts}) >= 6  # a city that exercises most loops
    return path, alerts, reports


def by_id(alerts: list[dict]) -> dict[str, bytes]:
    return {a["alert_id"]: orjson.dumps(a, option=orjson.OPT_SORT_KEYS) for a in alerts}


def assert_same_outputs(
    deployment: Deployment, alerts: list[dict], reports: list[dict] | None
) -> int:
    """The worker's alerts equal replay's by id and content; reports likewise (if given).

    Returns how many duplicate alert messages reached the topic (at-least-once).
    """
    published = deployment.wait_for("alerts", len(alerts))
    expected = by_id(alerts)
    got: dict[str, bytes] = {}
    for alert in published:
        encoded = orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)
        assert got.setdefault(alert["alert_id"], encoded) == encoded  # a redelivery is identical
    assert got == expected
    if reports is not None:
        published_reports = deployment.wait_for("daily-report", len(reports))
        assert sorted(distinct(published_reports)) == sorted(distinct(reports))
    return len(published) - len(got)


def test_one_worker_equals_replay(deployment: Deployment, city: tuple[Path, list, list]) -> None:
    path, alerts, reports = city
    deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    assert assert_same_outputs(deployment, alerts, reports) == 0


def test_two_workers_in_one_group_equal_replay(
    deployment: Deployment, city: tuple[Path, list, list]
) -> None:
    path, alerts, reports = city
    deployment.start_worker()
    deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    assert_same_outputs(deployment, alerts, reports)


def test_a_worker_joining_mid_run_changes_nothing(
    deployment: Deployment, city: tuple[Path, list, list]
) -> None:
    path, alerts, reports = city
    first, second = split_file(path, 2)
    deployment.start_worker()
    deployment.produce(first)
    # the first worker has state to hand over: it published some person-status
    deployment.wait_until(lambda: bool(deployment.read("person-status")), "first worker's output")
    joining = deployment.start_worker()
    # a rebalance moved input partitions (and their tables) to the joining worker
    deployment.wait_until(lambda: bool(assigned_inputs(joining, deployment.prefix)),
                          "input partitions assigned to the joining worker")
    deployment.produce(second, until=UNTIL)
    assert_same_outputs(deployment, alerts, reports)


def test_kill_9_and_restart_gives_the_same_alerts_and_daily_reports(
    deployment: Deployment, city: tuple[Path, list, list]
) -> None:
    path, alerts, reports = city
    first, second = split_file(path, 2)
    worker = deployment.start_worker()
    deployment.produce(first)
    deployment.wait_until(lambda: bool(deployment.read("alerts")), "a first alert")
    deployment.kill(worker)  # mid-run, no goodbye: state and offsets are only what Kafka has
    before = {orjson.loads(v)["alert_id"] for _, v in deployment.read("alerts")}
    assert len(before) < len(alerts), "the worker had finished before the kill: not mid-run"
    deployment.start_worker()  # a fresh data directory: everything comes from the changelog
    deployment.produce(second, until=UNTIL)
    # Exact, reports included: a batch's outputs, changelog and offsets are one transaction,
    # so a contribution is neither counted twice nor lost across the crash.
    assert_same_outputs(deployment, alerts, reports)


def test_testing_rounds_on_two_workers_equal_replay(deployment: Deployment,
                                                    tmp_path: Path) -> None:
    # given a city with testing rounds (helpers.round_city), replayed
    lines = [to_line(event) for _, event in sorted(round_city(), key=lambda e: epoch(e[0]))]
    path = tmp_path / "rounds.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    alerts, rounds = io.BytesIO(), io.BytesIO()
    replay_lines(lines, default_policy(), until=epoch(UNTIL), alerts_out=alerts,
                 round_reports_out=rounds)
    expected = [orjson.loads(line) for line in rounds.getvalue().splitlines()]
    assert {r["stage"] for r in expected} == {"progress", "close", "final"}
    # when two workers share the partitions: each person partition sends its shares
    deployment.start_worker()
    deployment.start_worker()
    deployment.produce(path, until=UNTIL)
    # then the alerts (round_missed among them) and the summed round reports are replay's
    assert_same_outputs(deployment, [orjson.loads(line) for line in
                                     alerts.getvalue().splitlines()], None)
    published = deployment.wait_for("round-report", len(expected))
    assert sorted(distinct(published)) == sorted(distinct(expected))
