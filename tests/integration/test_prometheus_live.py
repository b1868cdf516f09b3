"""A real Prometheus server scrapes a live worker fed a simulated testing round.

Debian's ``prometheus`` (installed for ``promtool``) runs with the project's alerting rules
(``deploy/prometheus/rules.yml``) and scrapes the worker every second. Once the round's final
report is published, the coverage series Prometheus stored must be the final report's, and
every rule of the project must have evaluated on the live data without error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from worker_harness import CLOSEDLOOP, Deployment, free_port, simulate

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
UNTIL = "2022-09-09T00:00:00+08:00"


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, tmp_path)
    yield deployed
    deployed.stop_all()


class Prometheus:
    """A Prometheus server with the project's rules, scraping one target every second."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus package (which installs promtool) is required"
        self.binary = binary
        self.workdir = workdir
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, target: str) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "closedloop-worker",
                                "static_configs": [{"targets": [target]}]}],
        }))
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address={self.base.removeprefix('http://')}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path)
    yield server
    server.stop()


def api(base: str, path: str, **query: str) -> Any:
    url = f"{base}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def wait_for(what: str, check: Any, timeout: float = 120) -> Any:
    """Poll ``check`` until it returns something truthy (conditions, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError:  # the server is still starting
            last = None
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_round_coverage_and_the_alerting_rules_evaluate_on_a_live_worker(
        deployment: Deployment, prometheus: Prometheus, tmp_path: Path) -> None:
    base = prometheus.base
    city = tmp_path / "city.jsonl"
    simulate(city, people=300, days=2, seed=11, round_=True)
    round_reports = tmp_path / "round-reports.jsonl"
    subprocess.run([*CLOSEDLOOP, "replay", str(city), "--until", UNTIL, "--quiet",
                    "--alerts", str(tmp_path / "alerts.jsonl"),
                    "--round-reports", str(round_reports)], check=True, timeout=120)
    reports = [orjson.loads(line) for line in round_reports.read_bytes().splitlines()]
    assert [r["stage"] for r in reports].count("final") == 1  # a round, closed and caught up

    worker = deployment.start_worker()
    prometheus.start(f"127.0.0.1:{worker.web_port}")  # type: ignore[attr-defined]
    wait_for("Prometheus to scrape the worker", lambda: any(
        target["health"] == "up" for target in api(base, "targets")["activeTargets"]))
    deployment.produce(city, until=UNTIL)
    published = deployment.wait_for("round-report", len(reports))
    # the worker's final report is replay's, and Prometheus must hold its coverage
    [final] = [r for r in published if r["stage"] == "final"]
    assert final == next(r for r in reports if r["stage"] == "final")
    expected = {row["district"]: (row["sampled"] + row["caught_up"]) / row["in_scope"]
                for row in final["rows"] if row["in_scope"]}
    assert expected and min(expected.values()) < 1.0  # some are still to catch up

    def coverage() -> dict[str, float] | None:
        result = api(base, "query", query='closedloop_round_coverage_ratio'
                     f'{{job="closedloop-worker",round_id="{final["round_id"]}"}}')
        got = {series["metric"]["district"]: float(series["value"][1])
               for series in result["result"]}
        seen["coverage"] = got
        return got if got == pytest.approx(expected) else None

    seen: dict[str, Any] = {}
    try:
        wait_for("the final report's coverage in Prometheus", coverage)
    except AssertionError:
        raise AssertionError(f"Prometheus has {seen.get('coverage')}, the final report "
                             f"{expected}") from None

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [rule for group in api(base, "rules")["groups"] for rule in group["rules"]]
        # a rule never evaluated reports lastEvaluation 0001-01-01T00:00:00Z
        done = all(rule.get("lastEvaluation", "0001").startswith("20") for rule in rules)
        return rules if rules and done else None

    rules = wait_for("every rule to evaluate", evaluated)
    names = {rule["name"] for rule in rules}
    assert "ClosedloopRoundCoverageLow" in names and len(names) >= 8
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules
                 if rule["health"] != "ok"]
    assert unhealthy == [], prometheus.log.read_text()[-2000:]
